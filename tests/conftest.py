import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import launch_support as LS

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


# ---------------------------------------------------------------- ros2 launch (launch_support)

@pytest.fixture(scope='module')
def prefix():
    """Where this package is installed for ament; a failure (not a skip) when the launch
    system is here but the package is not, or is not this working copy."""
    for root in map(Path, LS.ament_prefixes()):
        if (root / LS.MARKER).is_file():
            break
    else:
        pytest.fail(f'{LS.PACKAGE} is in no ament prefix ({LS.ament_prefixes()}): run '
                    '`make venv` (tools/ament_develop.py lays out the venv), or on a ROS machine '
                    '`colcon build` and source install/setup.bash')
    for path in LS.LAUNCH_FILES:
        installed = root / 'share' / LS.PACKAGE / 'launch' / path.name
        assert installed.is_file() and installed.read_bytes() == path.read_bytes(), (
            f'{installed} is not {path}: the install is stale; run `make venv` (or '
            '`colcon build` again)')
    return root


@pytest.fixture(scope='module')
def ros2():
    exe = shutil.which('ros2', path=os.pathsep.join([str(Path(sys.executable).parent),
                                                     os.environ.get('PATH', '')]))
    assert exe, 'launch is importable but the ros2 command (ros2cli) is not on PATH'
    return exe
