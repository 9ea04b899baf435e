"""check-hw --robot ur5 against the twin standing in for the UR driver, over real DDS."""
import subprocess
import sys

from sensor_msgs.msg import JointState

from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.ros.monitor import Probe

from ros_support import CONFIG

TIMING = ('state rate', 'state age')
"""Checks that measure this machine's timing as much as the driver's: on a loaded machine
they may say FAIL, which is theirs to say; the rate itself is bench/ros_timing.py's."""


def _check(env, tmp_path):
    return subprocess.run([sys.executable, '-m', 'trpo_robot.cli', 'check-hw', '--robot',
                           'ur5', '--seconds', '2'], env=env, capture_output=True, text=True,
                          timeout=300)


def _tagged(stdout, name):
    return [line.split()[0] for line in stdout.splitlines()
            if line.strip()[:4] in ('PASS', 'WARN', 'FAIL') and name in line]


def test_check_hw_passes_on_the_twin_and_fails_without_a_driver(tmp_path):
    domain = G.free_domain_id()
    env = G.ros_env(domain)
    values = P.node_parameters([CONFIG / 'ur5.yaml'], 'twin_node')
    values.update(sim_clock=False, real_time_factor=1.0, realtime=False)
    robot_yaml = P.write_param_file(tmp_path / 'ur5.yaml',
                                    P.to_ros(P.build(P.RobotParams, values)))
    probe = Probe(domain)
    twin = G.NodeProcess('twin_node', [robot_yaml], env, tmp_path)
    try:
        probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        G.wait_for(lambda: probe.got('joints') or not twin.alive(), 120, 0.1,
                   'joint_states from the twin')
        assert twin.alive(), twin.log_path.read_text()
        result = _check(env, tmp_path)
    finally:
        probe.close()
        twin.stop()
    out = result.stdout
    for name in ('joint names', 'joint limits', 'velocity controller'):
        assert _tagged(out, name) == ['PASS'], (name, out)
    for name in TIMING:  # measured and reported, whatever they found
        assert len(_tagged(out, name)) == 1 and 'ms' in out, (name, out)
    failed = [name for name in TIMING if _tagged(out, name) == ['FAIL']]
    verdict = out.strip().splitlines()[-1]
    if failed:
        assert result.returncode == 1 and verdict.startswith('result: FAIL'), out
        assert all(name in verdict for name in failed), out
    else:
        assert result.returncode == 0 and verdict.startswith('result: PASS'), \
            out + result.stderr
    result = _check(G.ros_env(G.free_domain_id()), tmp_path)
    assert result.returncode == 1
    assert 'no message received' in result.stdout and 'fix: start the UR driver' in \
        result.stdout
