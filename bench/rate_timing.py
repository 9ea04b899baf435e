"""RateLoop lateness while a TRPO-like torch load saturates another core.

A separate process (spawned, one torch thread) runs policy-gradient and Fisher-vector
products on a 2048-sample batch without pause, as the learner does. Meanwhile a control
thread runs RateLoop at 125 Hz and 500 Hz, filtering one command through the UR5 shield
per tick, with and without SCHED_FIFO. Lateness is wake-up time minus deadline.

    python bench/rate_timing.py [--ticks 10000] [--quick]

Takes about (ticks / 125 + ticks / 500) x 2 seconds. Prints a markdown table, then
rate_p99_ms=... lines per configuration.
"""
import argparse
import multiprocessing as mp
import os
from pathlib import Path
import sys
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.paths import urdf_path  # noqa: E402
from trpo_robot.robot.backend import JointState  # noqa: E402
from trpo_robot.robot.rate import RateLoop  # noqa: E402
from trpo_robot.robot.shield import SafetyShield, ShieldConfig  # noqa: E402
from trpo_robot.robot.spec import RobotSpec  # noqa: E402

UR5_HOME = np.array([0.0, -1.57, 1.57, -1.57, -1.57, 0.0])


def learner_load(stop, started):
    """Busy loop shaped like a TRPO update: gradients and Hessian-vector products."""
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = torch.nn.Sequential(torch.nn.Linear(17, 64), torch.nn.Tanh(),
                                 torch.nn.Linear(64, 64), torch.nn.Tanh(),
                                 torch.nn.Linear(64, 6))
    obs = torch.randn(2048, 17)
    target = torch.randn(2048, 6)
    params = list(policy.parameters())
    started.set()
    while not stop.is_set():
        loss = ((policy(obs) - target) ** 2).mean()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        vector = torch.randn_like(flat)
        for _ in range(10):  # conjugate-gradient iterations: one HVP each
            hvp = torch.autograd.grad(flat @ vector, params, retain_graph=True)
            vector = torch.cat([h.reshape(-1) for h in hvp]).detach()
            vector = vector / (vector.norm() + 1e-8)


def control_loop(period, ticks, realtime, result):
    """Run the timed loop; called in its own thread, as the actor's control loop is."""
    spec = RobotSpec.from_urdf(urdf_path('ur5'))
    centre = spec.fk(UR5_HOME)
    shield = SafetyShield(spec, ShieldConfig(max_velocity=0.3, workspace_low=tuple(centre - 0.2),
                                             workspace_high=tuple(centre + 0.2)), period)
    rng = np.random.default_rng(0)
    loop = RateLoop(period, realtime=realtime)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loop.start()
    q = UR5_HOME.copy()
    for _ in range(ticks):
        loop.wait()
        state = JointState(q, np.zeros(6), time.monotonic())
        sent, _ = shield.filter(state, rng.normal(0.0, 0.3, 6))
        q = q + sent * period
    result['stats'] = loop.stats()
    result['realtime'] = loop.realtime_active
    result['warnings'] = [str(w.message) for w in caught]
    loop.release_realtime()


def run(period, ticks, realtime):
    result = {}
    thread = threading.Thread(target=control_loop, args=(period, ticks, realtime, result))
    thread.start()
    thread.join()
    return result


QUICK = {'ticks': 500}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ticks', type=int, default=10000)
    return record.add_quick(parser)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('rate_timing', args.quick, argv)
    ctx = mp.get_context('spawn')
    stop, started = ctx.Event(), ctx.Event()
    load = ctx.Process(target=learner_load, args=(stop, started), daemon=True)
    load.start()
    started.wait(60)
    time.sleep(1.0)  # let the load reach its steady state
    rows = []
    try:
        for hz in (125, 500):
            for realtime in (False, True):
                result = run(1.0 / hz, args.ticks, realtime)
                rows.append((hz, realtime, result))
    finally:
        stop.set()
        load.join(10)
    print(f'cpus: {os.cpu_count()}, load: one spawned torch process (1 thread), '
          f'ticks per row: {args.ticks}\n')
    print('| rate | scheduling | overruns | p50 ms | p99 ms | max ms |')
    print('|---|---|---|---|---|---|')
    for hz, realtime, result in rows:
        stats = result['stats']
        sched = 'SCHED_FIFO 50' if result['realtime'] else (
            'normal (FIFO refused)' if realtime else 'normal')
        print(f'| {hz} Hz | {sched} | {stats.overruns} | {1e3 * stats.p50:.3f} | '
              f'{1e3 * stats.p99:.3f} | {1e3 * stats.max:.3f} |')
    print()
    for hz, realtime, result in rows:
        stats = result['stats']
        tag = 'fifo' if result['realtime'] else 'normal'
        print(f'rate_p99_ms_{hz}hz_{tag}={1e3 * stats.p99:.3f} overruns={stats.overruns}')
        for message in result['warnings']:
            print(f'  warning: {message}')
    results.write(*(dict(rate_hz=hz, realtime_asked=realtime, realtime=result['realtime'],
                         ticks=args.ticks, overruns=result['stats'].overruns,
                         p50_ms=1e3 * result['stats'].p50, p99_ms=1e3 * result['stats'].p99,
                         max_ms=1e3 * result['stats'].max, warnings=result['warnings'])
                    for hz, realtime, result in rows))


if __name__ == '__main__':
    main()
