"""check-hw --robot ur5 against the faithful twin standing in for the UR driver, over DDS.

The twin keeps its joint_states flowing through a protective stop, a stopped program and
an inactive controller, as the driver does, and its controller keeps its subscription when
inactive: check-hw must prove that the arm follows a command, not count subscribers.
"""
import subprocess
import sys

import pytest
from ros_support import call_trigger, CONFIG
from sensor_msgs.msg import JointState

from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.ros.monitor import Probe

pytestmark = pytest.mark.timeout(400)


def _check(env):
    return subprocess.run([sys.executable, '-m', 'trpo_robot.cli', 'check-hw', '--robot',
                           'ur5', '--seconds', '1'], env=env, capture_output=True, text=True,
                          timeout=120)


class _Twin:
    """twin_node at real time with system-clock stamps, like the real driver, and a probe."""

    def __init__(self, folder):
        self.domain = G.free_domain_id()
        self.env = G.ros_env(self.domain)
        values = P.node_parameters([CONFIG / 'ur5.yaml'], 'twin_node')
        values.update(sim_clock=False, real_time_factor=1.0)
        robot_yaml = P.write_param_file(folder / 'ur5.yaml',
                                        P.to_ros(P.build(P.RobotParams, values)))
        self.probe = Probe(self.domain)
        self.probe.listen('joints', JointState, '/joint_states', U.QOS_STATE_SUB)
        self.proc = G.NodeProcess('twin_node', [robot_yaml], self.env, folder)
        G.wait_for(lambda: self.probe.got('joints') or not self.proc.alive(), 120, 0.05,
                   'joint_states from the twin')
        assert self.proc.alive(), self.proc.tail()

    def close(self):
        self.probe.close()
        self.proc.stop()


@pytest.fixture
def twin(tmp_path):
    t = _Twin(tmp_path)
    yield t
    t.close()


def _lines(result, verdict, name):
    return [line for line in result.stdout.splitlines()
            if line.strip().startswith(verdict) and name in line]


def test_check_hw_passes_on_the_twin_when_the_arm_follows(twin):
    result = _check(twin.env)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ('joint names', 'state rate', 'state age', 'joint limits',
                 'arm follows a command'):
        assert _lines(result, 'PASS', name), (name, result.stdout)
    assert result.stdout.strip().splitlines()[-1].startswith('result: PASS')


def test_check_hw_fails_without_a_driver():
    result = _check(G.ros_env(G.free_domain_id()))
    assert result.returncode == 1
    assert 'no message received' in result.stdout and 'fix: start the UR driver' in \
        result.stdout


class _G:
    """What ros_support.call_trigger needs."""

    def __init__(self, probe):
        self.probe = probe


@pytest.mark.parametrize('fault, cause', [
    ('deactivate_controller', 'forward_velocity_controller is active'),
    ('protective_stop', 'protective stop'),
    ('stop_program', 'External Control program is not running'),
])
def test_check_hw_fails_and_names_the_cause_when_the_arm_cannot_move(twin, fault, cause):
    assert call_trigger(_G(twin.probe), fault, node='/twin_node').success
    result = _check(twin.env)
    assert result.returncode == 1, result.stdout
    assert _lines(result, 'FAIL', 'arm follows a command'), result.stdout
    assert cause in result.stdout, result.stdout
