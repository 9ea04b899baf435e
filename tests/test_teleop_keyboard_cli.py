"""`trpo-robot teleop-keyboard` in a pseudo-terminal: keys become Joy, the terminal is
restored on exit."""
import os
import pty
import subprocess
import termios

import pytest
from sensor_msgs.msg import Joy

from trpo_robot.robot.keyboard import KEYBOARD_MAPPING as KB
from trpo_robot.ros import graph as G
from trpo_robot.ros.monitor import Probe

pytestmark = pytest.mark.timeout(60)


def test_keys_become_joy_on_the_namespace_and_the_terminal_is_restored(
        trpo_robot_cmd, cli_env):
    domain = G.free_domain_id()
    env = {**cli_env, **G.ros_env(domain)}
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    probe = Probe(domain)
    proc = subprocess.Popen(trpo_robot_cmd + ['teleop-keyboard', '--namespace', 'arm1'],
                            stdin=slave, stdout=slave, stderr=slave, env=env)
    try:
        probe.listen('joy', Joy, '/arm1/joy', 10)
        G.wait_for(lambda: probe.got('joy'), 30, 0.1, 'Joy from teleop-keyboard')
        os.write(master, b' ')  # deadman on
        G.wait_for(lambda: any(m.buttons[KB.deadman] == 1 for _, m in probe.got('joy')), 30,
                   0.05, 'a Joy reading with the deadman held')
        os.write(master, b'\x1b[A')  # up: jog +

        def jogging():
            return any(m.buttons[KB.deadman] == 1 and m.axes[KB.axis] == 1.0
                       for _, m in probe.got('joy'))
        G.wait_for(jogging, 10, 0.05, 'a Joy reading with the deadman held and axis +1')
        os.write(master, b'e')  # e-stop: a tap on the e-stop button, deadman let go
        G.wait_for(lambda: any(m.buttons[KB.estop] == 1 for _, m in probe.got('joy')), 10,
                   0.05, 'the e-stop button')
        assert probe.got('joy')[-1][1].buttons[KB.deadman] == 0
        os.write(master, b'q')
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        probe.close()
    assert termios.tcgetattr(slave) == before, 'the terminal was left in raw mode'
    os.close(master)
    os.close(slave)
