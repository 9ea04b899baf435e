import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('MUJOCO_GL', 'egl')
# The fleet key (trpo_robot/auth.py) defaults to $XDG_CONFIG_HOME/trpo_robot/fleet.key: a
# private folder for this session, inherited by every node process and CLI run it starts,
# keeps the tests off the user's real key and the runs' keys apart.
_CONFIG_HOME = tempfile.mkdtemp(prefix='trpo_robot_test_config_')
os.environ['XDG_CONFIG_HOME'] = _CONFIG_HOME
atexit.register(shutil.rmtree, _CONFIG_HOME, True)


@pytest.fixture
def cli_env():
    """Environment for running the installed `trpo-robot` as a real subprocess."""
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


@pytest.fixture
def trpo_robot_cmd():
    exe = Path(sys.executable).with_name('trpo-robot')
    return [str(exe)] if exe.exists() else [sys.executable, '-m', 'trpo_robot.cli']


@pytest.fixture
def emulator(tmp_path):
    """A Dynamixel chain emulated on a pty (tests/dxl_support.py), stopped afterwards."""
    from dxl_support import running_emulator
    with running_emulator(tmp_path / 'ttyDXL') as emu:
        yield emu


@pytest.fixture
def fleet_keyring():
    """The keyring every node of this test session uses (the session's default key)."""
    from trpo_robot import auth
    return auth.Keyring.from_file()
