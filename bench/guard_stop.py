"""kill -9 of the actor mid-episode: how long until the arm rests, and how far it travels.

The faithful UR5 twin at real time holds the newest command forever, as the UR driver does.
The actor (an untrained policy, published once on /policy as the learner would) acts an
episode; at a random moment of it, SIGKILL. With the command guard (guard_node) between
actor and driver, the guard zeroes the command after guard_timeout of driver time; without
it (require_guard: false, the actor publishes straight to the controller) nothing does.
The probe records joint_states; from the sim stamp of the kill it reports the time until
every joint stays below REST rad/s, the joint travel until then, and the motion in the
second after rest (must be 0).

Also: a protective stop (the twin's ~/protective_stop, as the pendant would) while acting,
and the wall time until the actor leaves RUN (its ~/state), i.e. aborts the episode as
arm_not_following.

--robot dxl: the same kills on the Dynamixel path, at real time: the servo emulator on a pty
(MuJoCo behind Protocol 2.0), dxl_driver_node over dynamixel-sdk, the guard and the actor.
Without the guard the driver's own driver_command_timeout (0.25 s) is what stops the arm.

    python bench/guard_stop.py [--robot ur5|dxl] [--trials 5] [--without 2] [--protective 5]
    python bench/guard_stop.py --quick   # one trial of each kind

Writes JSON lines to bench/results/guard_stop.jsonl.
"""
import argparse
import json
from pathlib import Path
import random
import signal
import sys
import tempfile
import time

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import String, UInt8MultiArray
from std_srvs.srv import Trigger

from trpo_robot.dxl_emulator import Emulator
from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.ros.monitor import Probe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REST = 0.01
"""rad/s: every joint below this counts as at rest (the twin's velocity noise is below)."""
WATCH = 5.0
"""s of sim time watched after the kill."""


class Run:
    def __init__(self, folder, guard, seed, robot='ur5'):
        self.domain = G.free_domain_id()
        env = G.ros_env(self.domain)
        values = P.node_parameters([ROOT / 'config' / f'{robot}.yaml'], 'actor_node')
        values.update(real_time_factor=1.0, seed=seed, require_guard=guard,
                      episode_dir=str(folder / 'episodes'))
        self.emulator, driver = None, ('twin_node', None)
        if robot == 'dxl':  # a real bus: system-clock stamps, resets that drive the arm
            values.update(sim_clock=False, teleport=False)
            self.emulator = Emulator(folder / 'ttyDXL', priority=60).start()
            driver = ('dxl_driver_node', {'port': str(self.emulator.link),
                                          'dxl_config': str(_bus_file(folder))})
        self.rp = P.build(P.RobotParams, values)
        robot_yaml = P.write_param_file(folder / 'robot.yaml', P.to_ros(self.rp))
        self.probe = Probe(self.domain)
        self.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        self.probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
        pub = self.probe.node.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)
        pub.publish(U.blob_msg(policy_blob(seed, robot)))
        nodes = [driver] + ([('guard_node', None)] if guard else []) + \
            [('actor_node', {'use_sim_time': self.rp.sim_clock})]
        self.procs = {n: G.NodeProcess(n, [robot_yaml], env, folder / 'logs', params=extra)
                      for n, extra in nodes}

    def wait(self, predicate, timeout, what):
        return G.wait_for(predicate, timeout, 0.01, what)

    def state(self):
        got = self.probe.got('state')
        return got[-1][1].data if got else ''

    def joints(self):
        """(stamps, positions, velocities) of every joint_states heard."""
        got = [m for _, m in self.probe.got('joints')]
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in got])
        return stamps, np.array([m.position for m in got]), np.array([m.velocity for m in got])

    def now(self):
        return self.joints()[0][-1]

    def acting_for(self, seconds):
        """Until the actor has been in RUN for `seconds` of sim time, the arm moving."""
        self.wait(lambda: self.state() == 'run', 300, 'the actor in RUN')
        start = self.now()
        self.wait(lambda: self.now() - start >= seconds, 60, 'time in the episode')
        self.wait(lambda: np.max(np.abs(self.joints()[2][-1])) > 0.02, 30, 'the arm moving')

    def close(self):
        self.probe.close()
        G.stop_all(list(self.procs.values())[::-1], timeout=15.0)
        if self.emulator is not None:
            self.emulator.stop()


def policy_blob(seed, robot):
    """An untrained policy, as the learner's first, signed with the fleet key."""
    from trpo_robot import auth
    from trpo_robot.trpo import wire
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    task = P.build(P.RobotParams, P.node_parameters(
        [ROOT / 'config' / f'{robot}.yaml'], 'actor_node')).task_spec()
    agent = Agent(*P.task_dims(task), preset('reacher'), seed=seed)
    return auth.Keyring.from_file().sign(wire.encode_policy(
        agent.snapshot(), agent.obs_norm, 1, robot=robot, task=task.name), auth.POLICY)


def _bus_file(folder):
    """The package's bus file with a 16 ms latency timer: a pty's bytes cross a kernel
    worker of normal priority, which a busy machine holds up now and then (a USB adapter
    on a quiet machine keeps the 1 ms of config/dxl_hw.yaml)."""
    text = (ROOT / 'config' / 'dxl_hw.yaml').read_text()
    path = folder / 'dxl_hw.yaml'
    path.write_text(text.replace('latency_timer_ms: 1\n', 'latency_timer_ms: 16\n'))
    return path


def after_kill(run, killed_at):
    run.wait(lambda: run.now() >= killed_at + WATCH, 60, f'{WATCH} s after the kill')
    stamps, q, v = run.joints()
    keep = stamps >= killed_at
    stamps, q, v = stamps[keep], q[keep], v[keep]
    moving = np.max(np.abs(v), axis=1) >= REST
    last = int(np.nonzero(moving)[0][-1]) if moving.any() else -1
    at_rest = last + 1 < len(stamps) and stamps[-1] - stamps[last + 1] >= 1.0
    rest = last + 1 if at_rest else len(stamps) - 1
    travel = float(np.sum(np.abs(np.diff(q[:rest + 1], axis=0))))
    after = _drift(stamps[rest:], q[rest:]) if at_rest else float('nan')
    return dict(at_rest=bool(at_rest),
                rest_s=float(stamps[rest] - killed_at) if at_rest else None,
                travel_rad=travel, motion_after_rest_rad=after,
                speed_at_kill=float(np.max(np.abs(v[0]))) if len(v) else None)


def _drift(stamps, q, window=0.1):
    """Largest joint displacement between the first and the last `window` s of the second
    after rest, each averaged, so that encoder noise (the twin's 1e-4 rad) does not count."""
    first = q[stamps - stamps[0] < window].mean(axis=0)
    last = q[stamps - stamps[0] >= 1.0 - window][:max(1, int(window / 0.008))].mean(axis=0)
    return float(np.max(np.abs(last - first)))


def kill_trial(guard, seed, robot):
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp), guard, seed, robot)
        try:
            run.acting_for(random.Random(seed).uniform(0.5, 3.0))
            killed_at = run.now()
            run.procs['actor_node'].send(signal.SIGKILL)
            run.procs['actor_node'].proc.wait(10)
            result = after_kill(run, killed_at)
        finally:
            run.close()
    return dict(bench='guard_stop', case='kill_actor', robot=robot, guard=guard, seed=seed,
                guard_timeout=run.rp.effective_guard_timeout(),
                driver_command_timeout=run.rp.driver_command_timeout, **result)


def protective_trial(seed):
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp), True, seed)
        try:
            run.acting_for(random.Random(seed).uniform(0.5, 3.0))
            client = run.probe.node.create_client(Trigger, '/twin_node/protective_stop')
            assert client.wait_for_service(timeout_sec=30)
            called = time.monotonic()
            client.call_async(Trigger.Request())
            left = run.wait(lambda: run.state() != 'run' and time.monotonic(), 30,
                            'the actor leaving RUN')
            result = dict(abort_s=left - called, state=run.state())
        finally:
            run.close()
    return dict(bench='guard_stop', case='protective_stop', seed=seed,
                follow_lag=run.rp.follow_lag, follow_window=run.rp.follow_window, **result)


QUICK = {'trials': 1, 'without': 1, 'protective': 1}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--trials', type=int, default=5, help='kills with the guard')
    ap.add_argument('--without', type=int, default=2, help='kills without the guard')
    ap.add_argument('--protective', type=int, default=5, help='protective stops (UR only)')
    ap.add_argument('--robot', choices=('ur5', 'dxl'), default='ur5')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('guard_stop', args.quick, argv)
    rows = []
    for guard, trials in ((True, args.trials), (False, args.without)):
        for seed in range(trials):
            rows.append(kill_trial(guard, seed, args.robot))
            print(json.dumps(rows[-1]), flush=True)
    for seed in range(args.protective if args.robot == 'ur5' else 0):
        rows.append(protective_trial(seed))
        print(json.dumps(rows[-1]), flush=True)
    results.write(*rows)


if __name__ == '__main__':
    main()
