"""Control timing over ROS on the UR5 twin at 125 Hz while the learner updates.

twin_node (real time: the 8 ms driver period is 8 ms of wall time), actor_node and
learner_node run as processes, the learner with a small batch so that it updates every few
seconds; --hog adds a process that runs TRPO updates back to back (one torch thread), i.e.
a core saturated by learning, as on a 2-core learning machine. After a warm-up the actor's
timing is reset through its ~/reset_timing service and read from /diagnostics at the end:
per-tick lateness (joint_states in -> command out) p50/p99/max, transport (driver publish
-> actor), overruns (driver periods without a command); plus the twin's receive-timeout
stops. Run once with and once without SCHED_FIFO; --hog 2 saturates both cores of a
2-core machine.

    python bench/ros_timing.py --seconds 60 --hog [2]
    python bench/ros_timing.py --seconds 60 --hog [2] --no-realtime
    python bench/ros_timing.py --quick   # 5 s after a 2 s warm-up, no hog

Writes a JSON line per run to bench/results/ros_timing.jsonl.
"""
import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from std_srvs.srv import Trigger

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.ros import graph as G  # noqa: E402
from trpo_robot.ros import params as P  # noqa: E402
from trpo_robot.ros.monitor import Probe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def hog():
    """TRPO updates back to back on a fixed random batch, forever."""
    import numpy as np
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.episode import Segment
    from trpo_robot.trpo.config import preset
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    agent = Agent(12, 2, preset('reacher'), seed=0)
    segs = []
    for _ in range(20):
        o = rng.standard_normal((100, 12)).astype(np.float32)
        segs.append(Segment(o, o, rng.standard_normal((100, 2)).astype(np.float32),
                            rng.standard_normal(100).astype(np.float32),
                            np.full(100, -2.0, np.float32), o[0], False, 0))
    while True:  # Agent.update does not read the version (staleness is AsyncLearner's)
        agent.update(segs)


QUICK = {'seconds': 5.0, 'warmup': 2.0}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=60.0)
    ap.add_argument('--warmup', type=float, default=10.0)
    ap.add_argument('--no-realtime', action='store_true')
    ap.add_argument('--hog', type=int, nargs='?', const=1, default=0,
                    help='saturate this many cores with TRPO updates (default 1)')
    ap.add_argument('--batch', type=int, default=500, help='learner batch, steps')
    ap.add_argument('--run-hog', action='store_true', help=argparse.SUPPRESS)
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    if args.run_hog:
        return hog()
    results = record.Run('ros_timing', args.quick, argv)

    work = Path(tempfile.mkdtemp(prefix='ros_timing_'))
    values = P.node_parameters([ROOT / 'config' / 'ur5.yaml'], 'actor_node')
    values.update(real_time_factor=1.0, realtime=not args.no_realtime)
    rp = P.build(P.RobotParams, values)
    lvalues = P.node_parameters([ROOT / 'config' / 'learner.yaml'], 'learner_node')
    lvalues.update({'trpo.batch_steps': args.batch, 'checkpoint_dir': str(work / 'ck')})
    lp = P.build(P.LearnerParams, lvalues)
    robot_yaml = P.write_param_file(work / 'robot.yaml', P.to_ros(rp))
    learner_yaml = P.write_param_file(work / 'learner.yaml', P.to_ros(lp))
    domain = G.free_domain_id()
    env = G.ros_env(domain)
    logs = work / 'logs'
    procs = [G.NodeProcess('twin_node', [robot_yaml], env, logs),
             G.NodeProcess('guard_node', [robot_yaml], env, logs),
             G.NodeProcess('learner_node', [robot_yaml, learner_yaml], env, logs),
             G.NodeProcess('actor_node', [robot_yaml], env, logs,
                           params={'use_sim_time': True})]
    hogs = [subprocess.Popen([sys.executable, __file__, '--run-hog'])
            for _ in range(args.hog)]
    probe = Probe(domain)
    try:
        for key in ('actor', 'twin', 'learner'):
            probe.watch(key, f'{key}_node')
        G.wait_for(lambda: int((probe.diag('actor', 'control') or {}).get('episodes', 0)) >= 1,
                   60, what='the first episode')
        time.sleep(args.warmup)
        client = probe.node.create_client(Trigger, '/actor_node/reset_timing')
        G.wait_for(lambda: client.wait_for_service(timeout_sec=0.1), 10, what='the service')
        future = client.call_async(Trigger.Request())
        G.wait_for(future.done, 10, what='reset_timing')
        twin0 = probe.diag('twin', 'driver')
        learner0 = probe.diag('learner', 'progress')
        time.sleep(args.seconds)
        actor, twin, learner = (probe.diag('actor', 'control'), probe.diag('twin', 'driver'),
                                probe.diag('learner', 'progress'))
    finally:
        probe.close()
        for hog_proc in hogs:
            hog_proc.kill()
            hog_proc.wait()
        G.stop_all(procs[::-1])
    f = float
    result = {
        'seconds': args.seconds, 'realtime': not args.no_realtime, 'hog': args.hog,
        'realtime_active': actor['realtime'] == 'True', 'ticks': int(actor['ticks']),
        'overruns': int(actor['overruns']),
        'lateness_ms': {k: f(actor[f'lateness_{k}_ms']) for k in ('p50', 'p99', 'max')},
        'transport_ms': {k: f(actor[f'transport_{k}_ms']) for k in ('p50', 'p99', 'max')},
        'watchdog_stops': int(twin['watchdog_stops']) - int(twin0['watchdog_stops']),
        'twin_overruns': int(twin['overruns']) - int(twin0['overruns']),
        'learner_updates': int(learner['updates']) - int(learner0['updates']),
        'update_s': f(learner['update_s'])}
    print(json.dumps(result))
    results.write(result)


if __name__ == '__main__':
    main()
