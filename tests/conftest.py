import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault('MUJOCO_GL', 'egl')


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
