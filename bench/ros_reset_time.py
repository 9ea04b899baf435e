"""Episode end to READY over ROS: twin_node and actor_node as processes, at real time.

The twin runs at real time (the 8 ms UR5 driver period is 8 ms of wall time) and, as on a
real arm, the actor resets by driving the arm through its shield (``teleport: false``).
An untrained policy (a fresh agent's weights, published once on /policy like the
learner's) acts 4 s episodes; there is no learner, so the policy never changes. Each
episode's blob carries the robot time of the reset before it (``reset_seconds``, the
lifecycle clock); the probe also times, on its own wall clock, each change of the actor's
~/state from 'safe_stop' to 'ready'.

teleop: a scripted operator on /joy (the keyboard layout the actor uses when no gamepad
is configured) grips the deadman with the stick centred, jogs the first joint for
--jog seconds, lets go and confirms. Its rows are that script's time plus the stop and
the settling, a lower bound for a person.

    python bench/ros_reset_time.py [--episodes 10] [--mode auto teleop] [--quick]

Writes a JSON line per mode to bench/results/ros_reset_time.jsonl.
"""
import argparse
import json
from pathlib import Path
import sys
import tempfile
import threading
import time

import numpy as np
from sensor_msgs.msg import Joy
from std_msgs.msg import String, UInt8MultiArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.robot.keyboard import KEYBOARD_MAPPING as KB  # noqa: E402
from trpo_robot.ros import graph as G  # noqa: E402
from trpo_robot.ros import node_utils as U  # noqa: E402
from trpo_robot.ros import params as P  # noqa: E402
from trpo_robot.ros.monitor import Probe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OBS, ACT = 12, 2


def policy_blob(seed=0):
    """Signed with the default fleet key, the one the actor started here checks against."""
    from trpo_robot import auth
    from trpo_robot.trpo import wire
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset
    agent = Agent(OBS, ACT, preset('reacher'), seed=seed)
    return auth.Keyring.from_file().sign(
        wire.encode_policy(agent.snapshot(), agent.obs_norm, 1, robot='ur5',
                           task='ur5_reacher_2d'), auth.POLICY)


class ScriptedJoy:
    """Grip, jog, let go, confirm, each time the actor's state turns to 'reset'."""

    def __init__(self, probe, jog_seconds):
        self.pub = probe.node.create_publisher(Joy, '/joy', 10)
        self.jog = jog_seconds
        self.stop = threading.Event()
        self.pending = threading.Event()

    def send(self, axis, *pressed, seconds):
        buttons = [int(i in pressed) for i in range(max(KB.joint_buttons) + 1)]
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.stop.is_set():
            self.pub.publish(Joy(axes=[float(axis)], buttons=buttons))
            time.sleep(0.02)

    def run(self):
        while not self.stop.is_set():
            if not self.pending.wait(0.1):
                continue
            self.pending.clear()
            self.send(0.0, KB.deadman, seconds=0.2)
            self.send(1.0, KB.deadman, seconds=self.jog)
            self.send(0.0, KB.deadman, seconds=0.1)
            self.send(0.0, KB.confirm, seconds=0.1)


def measure(mode, episodes, jog):
    work = Path(tempfile.mkdtemp(prefix='ros_reset_'))
    values = P.node_parameters([ROOT / 'config' / 'ur5.yaml'], 'actor_node')
    values.update(real_time_factor=1.0, teleport=False, reset_mode=mode,
                  episode_dir=str(work / 'episodes'))
    robot_yaml = P.write_param_file(work / 'robot.yaml', P.to_ros(P.build(P.RobotParams,
                                                                          values)))
    domain = G.free_domain_id()
    env, logs = G.ros_env(domain), work / 'logs'
    procs = [G.NodeProcess('twin_node', [robot_yaml], env, logs),
             G.NodeProcess('guard_node', [robot_yaml], env, logs),
             G.NodeProcess('actor_node', [robot_yaml], env, logs,
                           params={'use_sim_time': True})]
    probe = Probe(domain)
    operator = ScriptedJoy(probe, jog) if mode == 'teleop' else None
    stamps = []
    try:
        probe.listen('episodes', UInt8MultiArray, '/actor_node/episodes', U.qos_episodes(32))
        probe.listen('state', String, '/actor_node/state', U.QOS_POLICY)
        policy_pub = probe.node.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)
        if operator:
            threading.Thread(target=operator.run, daemon=True).start()
        policy_pub.publish(U.blob_msg(policy_blob()))
        seen = 0
        deadline = time.monotonic() + 60 + episodes * (30 if mode == 'teleop' else 10)
        while len(probe.got('episodes')) < episodes + 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f'{len(probe.got("episodes"))} episodes in time\n'
                                   + '\n'.join(p.tail(10) for p in procs))
            states = probe.got('state')
            for wall, msg in states[seen:]:
                stamps.append((wall, msg.data))
                if operator and msg.data == 'reset':
                    operator.pending.set()
            seen = len(states)
            time.sleep(0.01)
    finally:
        if operator:
            operator.stop.set()
        blobs = [bytes(m.data) for _, m in probe.got('episodes')]
        probe.close()
        G.stop_all(procs[::-1])
    return summarize(mode, blobs, stamps)


def summarize(mode, blobs, stamps):
    from trpo_robot.trpo import wire
    infos = [wire.decode_episode(b, OBS, ACT)[1] for b in blobs]
    infos.sort(key=lambda i: i['sequence'])
    robot_s = [i['extra']['reset_seconds'] for i in infos[1:]]  # the first: startup
    wall_s, stop_at = [], None
    for wall, state in stamps:
        if state == 'safe_stop':
            stop_at = wall
        elif state == 'ready' and stop_at is not None:
            wall_s.append(wall - stop_at)
            stop_at = None
    wall_s = wall_s[1:]  # the first: startup
    return {'mode': mode, 'resets': len(robot_s),
            'robot_s': {'median': float(np.median(robot_s)), 'max': float(np.max(robot_s))},
            'probe_wall_s': {'median': float(np.median(wall_s)),
                             'max': float(np.max(wall_s))} if wall_s else None,
            'episode_s': 4.0}


QUICK = {'episodes': 2}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=10)
    ap.add_argument('--mode', nargs='+', default=['auto', 'teleop'],
                    choices=['auto', 'teleop'])
    ap.add_argument('--jog', type=float, default=1.0, help='teleop: seconds of jogging')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('ros_reset_time', args.quick, argv)
    for mode in args.mode:
        result = measure(mode, args.episodes, args.jog)
        print(json.dumps(result), flush=True)
        results.write(result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
