"""Cost of one SafetyShield.filter call, on the tasks' own limits and workspace boxes.

A kinematic arm (q += sent * period) follows random agent actions on the task's joints,
held for one agent step (5 driver periods, as at 125 Hz), so the calls mix the cheap path
(far from walls and limits) with the near-wall path (Jacobian, drive-back) in the
proportion a reaching task produces; a 5 cm box around home shows the cost when the box
is hit all the time. Each call is timed alone; the timer's own cost is subtracted.

    python bench/shield_cost.py [--calls 20000] [--quick]

Last line: shield_us_per_call_ur5=X shield_us_per_call_dxl=Y (medians, task box on)
"""
import argparse
import dataclasses
from pathlib import Path
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.paths import urdf_path  # noqa: E402
from trpo_robot.robot.backend import JointState  # noqa: E402
from trpo_robot.robot.env import default_shield_config, task_spec  # noqa: E402
from trpo_robot.robot.shield import Intervention, SafetyShield  # noqa: E402
from trpo_robot.robot.spec import RobotSpec  # noqa: E402
from trpo_robot.robot.tasks import get_task  # noqa: E402

CASES = {  # robot: (task, driver period in s)
    'ur5': ('ur5_reacher_6d', 0.008),
    'dxl': ('dxl_reacher', 0.01),
}


def timer_cost():
    samples = []
    for _ in range(10000):
        start = time.perf_counter_ns()
        samples.append(time.perf_counter_ns() - start)
    return float(np.median(samples))


def rollout(shield, spec, task, period, calls, seed):
    """Per-call times (ns) and the share of calls the workspace rule changed.

    Like ArmEnv, only the task's actuated joints are commanded; the others get zero.
    """
    rng = np.random.default_rng(seed)
    now = [0.0]
    shield._clock = lambda: now[0]
    q, last = np.array(task.home, dtype=float), np.zeros(spec.dof)
    actuated = np.isin(spec.joint_names, task.actuated)
    times = np.empty(calls)
    workspace = 0
    action = np.zeros(spec.dof)
    for i in range(calls):
        if i % 5 == 0:
            action = rng.normal(0.0, 1.0, spec.dof) * shield.velocity_limit * actuated
        state = JointState(q, last, now[0])
        start = time.perf_counter_ns()
        sent, flags = shield.filter(state, action)
        times[i] = time.perf_counter_ns() - start
        workspace += bool(flags & Intervention.WORKSPACE)
        q = q + sent * period
        last = sent
        now[0] += period
    return times, workspace / calls


def measure(robot, calls):
    task_name, period = CASES[robot]
    task = get_task(task_name)
    spec = task_spec(RobotSpec.from_urdf(urdf_path(task.urdf), ee_link=task.ee_link), task)
    config = default_shield_config(spec, task)
    rows = {}
    centre = spec.fk(np.asarray(task.home, dtype=float))
    variants = (
        ('task box', config),
        ('no box', dataclasses.replace(config, workspace_low=None, workspace_high=None)),
        ('5 cm box', dataclasses.replace(config, workspace_low=tuple(centre - 0.05),
                                         workspace_high=tuple(centre + 0.05))),
    )
    for label, cfg in variants:
        shield = SafetyShield(spec, cfg, period)
        rollout(shield, spec, task, period, 2000, seed=1)  # warm-up
        shield.reset()
        times, share = rollout(shield, spec, task, period, calls, seed=0)
        rows[label] = (times, share)
    return spec.dof, rows


QUICK = {'calls': 2000}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--calls', type=int, default=20000)
    return record.add_quick(parser)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    run = record.Run('shield_cost', args.quick, argv)
    overhead = timer_cost()
    print(f'timer overhead {overhead:.0f} ns (subtracted)\n')
    print('| robot | joints | workspace | median us | p90 us | p99 us | calls changed by box |')
    print('|---|---|---|---|---|---|---|')
    medians, figures = {}, []
    for robot in CASES:
        dof, rows = measure(robot, args.calls)
        for label, (times, share) in rows.items():
            us = (times - overhead) / 1000.0
            p50, p90, p99 = np.percentile(us, [50, 90, 99])
            print(f'| {robot} | {dof} | {label} | {p50:.1f} | {p90:.1f} | {p99:.1f} | '
                  f'{100 * share:.1f}% |')
            figures.append(dict(robot=robot, joints=dof, workspace=label, calls=args.calls,
                                median_us=p50, p90_us=p90, p99_us=p99,
                                box_share=share, timer_overhead_ns=overhead))
            if label == 'task box':
                medians[robot] = p50
    print()
    print(f'shield_us_per_call_ur5={medians["ur5"]:.1f} '
          f'shield_us_per_call_dxl={medians["dxl"]:.1f}')
    run.write(*figures)


if __name__ == '__main__':
    main()
