"""Hot-swap over ROS: weights published -> first action of the new policy, and ticks missed.

twin_node and actor_node run as processes (UR5 twin, 125 Hz driver); this script plays the
learner: it publishes a new policy version on /policy, waits for the actor's ~/swaps event
for that version, and takes the time from just before publish() to the first command the
new policy sent (both CLOCK_MONOTONIC on one host). The phases in between come from the
event: transport (publish -> subscription callback), build (decode, validate, warm up in
the subscription thread), wait (until the control thread's next tick or episode boundary)
and act (policy, shield, publish). missed_ticks counts driver periods without a command
during the first agent step after each swap.

    python bench/ros_swap.py --swaps 1000 --swap-at tick --rtf 1
    python bench/ros_swap.py --swaps 30 --swap-at episode --rtf 4

    python bench/ros_swap.py --quick   # 20 swaps at the tick

Prints a table and a JSON line; writes the JSON to bench/results/ros_swap.jsonl.
"""
import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np
from std_msgs.msg import Float64MultiArray, UInt8MultiArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

from trpo_robot import auth  # noqa: E402
from trpo_robot.ros import graph as G  # noqa: E402
from trpo_robot.ros import node_utils as U  # noqa: E402
from trpo_robot.ros import params as P  # noqa: E402
from trpo_robot.ros.actor_node import SWAP_FIELDS  # noqa: E402
from trpo_robot.ros.monitor import Probe  # noqa: E402
from trpo_robot.trpo import wire  # noqa: E402
from trpo_robot.trpo.agent import Agent  # noqa: E402
from trpo_robot.trpo.config import preset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


QUICK = {'swaps': 20}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--swaps', type=int, default=1000)
    ap.add_argument('--swap-at', choices=('tick', 'episode'), default='tick')
    ap.add_argument('--rtf', type=float, default=1.0)
    ap.add_argument('--robot', default='ur5')
    ap.add_argument('--no-realtime', action='store_true')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('ros_swap', args.quick, argv)

    work = Path(tempfile.mkdtemp(prefix='ros_swap_'))
    values = P.node_parameters([ROOT / 'config' / f'{args.robot}.yaml'], 'actor_node')
    values.update(real_time_factor=args.rtf, swap_at=args.swap_at,
                  realtime=not args.no_realtime, learner_timeout=1e9)
    rp = P.build(P.RobotParams, values)
    robot_yaml = P.write_param_file(work / 'robot.yaml', P.to_ros(rp))
    task = rp.task_spec()
    obs_dim, act_dim = P.task_dims(task)
    agents = [Agent(obs_dim, act_dim, preset('reacher'), seed=s) for s in range(2)]

    domain = G.free_domain_id()
    env = G.ros_env(domain)
    procs = [G.NodeProcess('twin_node', [robot_yaml], env, work / 'logs'),
             G.NodeProcess('guard_node', [robot_yaml], env, work / 'logs'),
             G.NodeProcess('actor_node', [robot_yaml], env, work / 'logs',
                           params={'use_sim_time': True})]
    probe = Probe(domain)
    try:
        probe.listen('swaps', Float64MultiArray, '/actor_node/swaps', U.QOS_DIAG)
        probe.watch('actor', 'actor_node')
        pub = probe.node.create_publisher(UInt8MultiArray, rp.policy_topic, U.QOS_POLICY)
        G.wait_for(lambda: pub.get_subscription_count(), 30, what='the actor')
        rows = []
        keyring = auth.Keyring.from_file(rp.key_file)  # the actor's
        for version in range(args.swaps + 1):
            agent = agents[version % 2]
            blob = keyring.sign(wire.encode_policy(agent.snapshot(), agent.obs_norm, version,
                                                   robot=rp.robot, task=task.name),
                                auth.POLICY)
            seen = len(probe.got('swaps'))
            t_pub = time.monotonic()
            pub.publish(U.blob_msg(blob))
            event = G.wait_for(lambda: _event(probe, seen, version), 60,
                               what=f'swap to version {version}')
            if version == 0:  # the first policy starts the first episode: not a swap
                diag0 = probe.diag('actor', 'control')
                continue
            rows.append({**event, 'published': t_pub})
            if version % 100 == 0:
                print(f'{version} swaps', flush=True)
        diag = probe.diag('actor', 'control')
    finally:
        probe.close()
        G.stop_all(procs[::-1])
    results.write(report(args, rows, diag0, diag))


def _event(probe, seen, version):
    for _, msg in probe.got('swaps')[seen:]:
        event = dict(zip(SWAP_FIELDS, msg.data))
        if int(event['version']) == version:
            return event
    return None


def _stats(values_ms):
    v = np.asarray(values_ms)
    return {'p50': float(np.percentile(v, 50)), 'p90': float(np.percentile(v, 90)),
            'p99': float(np.percentile(v, 99)), 'max': float(v.max())}


def report(args, rows, diag0, diag):
    ms = 1e3
    phases = {
        'published -> first action': [(r['first_action'] - r['published']) * ms for r in rows],
        'transport (publish -> callback)': [(r['received'] - r['published']) * ms
                                            for r in rows],
        'build (decode, validate)': [(r['built'] - r['received']) * ms for r in rows],
        'wait for the swap point': [(r['swapped'] - r['built']) * ms for r in rows],
        'swap -> first action': [(r['first_action'] - r['swapped']) * ms for r in rows],
    }
    missed = [int(r['missed_ticks']) for r in rows]
    print(f'\n{len(rows)} swaps, swap_at={args.swap_at}, {args.robot} twin at '
          f'{args.rtf:g}x, realtime={not args.no_realtime}')
    print('| ms | p50 | p90 | p99 | max |\n|---|---|---|---|---|')
    result = {'swaps': len(rows), 'swap_at': args.swap_at, 'rtf': args.rtf,
              'robot': args.robot, 'realtime': not args.no_realtime, 'phases': {}}
    for name, values in phases.items():
        s = _stats(values)
        result['phases'][name] = s
        print(f'| {name} | {s["p50"]:.2f} | {s["p90"]:.2f} | {s["p99"]:.2f} | {s["max"]:.2f} |')
    ticks = int(diag['ticks']) - int(diag0['ticks'])
    overruns = int(diag['overruns']) - int(diag0['overruns'])
    result.update(missed_ticks_total=int(sum(missed)), swaps_with_missed=int(np.count_nonzero(
        missed)), ticks=ticks, overruns=overruns,
        lateness_p99_ms=float(diag['lateness_p99_ms']),
        lateness_max_ms=float(diag['lateness_max_ms']))
    print(f'ticks missed in the first step after a swap: {sum(missed)} over {len(rows)} swaps '
          f'({np.count_nonzero(missed)} swaps with any); whole run: {overruns} overruns in '
          f'{ticks} ticks; lateness p99 {diag["lateness_p99_ms"]} ms, max '
          f'{diag["lateness_max_ms"]} ms')
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
