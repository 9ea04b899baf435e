"""check-hw --robot ur5 against the twin standing in for the UR driver, over real DDS."""
import subprocess
import sys
import time

from trpo_robot.ros import graph as G
from trpo_robot.ros import params as P

from ros_support import CONFIG


def _check(env, tmp_path):
    return subprocess.run([sys.executable, '-m', 'trpo_robot.cli', 'check-hw', '--robot',
                           'ur5', '--seconds', '2'], env=env, capture_output=True, text=True,
                          timeout=120)


def test_check_hw_passes_on_the_twin_and_fails_without_a_driver(tmp_path):
    domain = G.free_domain_id()
    env = G.ros_env(domain)
    values = P.node_parameters([CONFIG / 'ur5.yaml'], 'twin_node')
    values.update(sim_clock=False, real_time_factor=1.0)
    robot_yaml = P.write_param_file(tmp_path / 'ur5.yaml',
                                    P.to_ros(P.build(P.RobotParams, values)))
    twin = G.NodeProcess('twin_node', [robot_yaml], env, tmp_path)
    try:
        time.sleep(3.0)
        assert twin.alive(), twin.log_path.read_text()
        result = _check(env, tmp_path)
    finally:
        twin.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ('joint names', 'state rate', 'state age', 'joint limits',
                 'velocity controller'):
        assert any(line.strip().startswith('PASS') and name in line
                   for line in result.stdout.splitlines()), (name, result.stdout)
    assert result.stdout.strip().splitlines()[-1].startswith('result: PASS')
    result = _check(G.ros_env(G.free_domain_id()), tmp_path)
    assert result.returncode == 1
    assert 'no message received' in result.stdout and 'fix: start the UR driver' in \
        result.stdout
