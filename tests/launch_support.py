"""Running `ros2 launch` in tests: is the launch system here, where is the package
installed for ament, and a launch process in its own session (tests/test_launch.py,
tests/test_plan.py; the `prefix` and `ros2` fixtures are in conftest.py)."""
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

from trpo_robot.ros import graph as G

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
PACKAGE = 'trpo_robot'
MARKER = Path('share') / 'ament_index' / 'resource_index' / 'packages' / PACKAGE


def launch_missing():
    try:
        import launch_ros  # noqa: F401
        import ros2launch  # noqa: F401
    except ImportError as e:
        return (f'the ROS 2 launch system is not installed here ({e}): `make test` installs '
                'it from ../shared/ros2-launch when that folder exists, a ROS 2 machine has '
                "it from its distribution (docs/ros.md, 'Installing')")
    return None


needs_launch = pytest.mark.skipif(launch_missing() is not None, reason=str(launch_missing()))


def ament_prefixes():
    """The ament prefixes `ros2 launch` will search: this venv's first when it holds the
    package (`make venv` lays it out there), then AMENT_PREFIX_PATH (a sourced colcon
    workspace or ROS distribution)."""
    own = [str(Path(sys.prefix))] if (Path(sys.prefix) / MARKER).is_file() else []
    given = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    return own + [p for p in given if p not in own]


def launch_env(tmp_path, prefix):
    env = G.ros_env(G.free_domain_id())  # localhost only; PYTHONPATH: this working copy
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(
        [str(prefix)] + [p for p in ament_prefixes() if p != str(prefix)])
    env['ROS_HOME'] = str(tmp_path / 'ros_home')
    env['ROS_LOG_DIR'] = str(tmp_path / 'ros_log')
    return env


class Launch:
    """`ros2 launch trpo_robot <file> <args>` in its own session, its output in a file."""

    def __init__(self, ros2, env, folder, launch_file, args):
        self.out_path = Path(folder) / 'launch.out'
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.out_path, 'wb')
        self.proc = subprocess.Popen([ros2, 'launch', PACKAGE, launch_file, *args], env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return self.out_path.read_text(errors='replace')

    def interrupt(self, timeout):
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.interrupt(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left of the group
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._out.close()
