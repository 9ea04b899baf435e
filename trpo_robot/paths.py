"""Finds the package's shared files (urdf/, sim/, config/, launch/) wherever it is installed.

A source checkout, a pip install (data_files under ``<prefix>/share/trpo_robot``) and a
colcon install (the ament index) lay these folders out differently; every caller asks here
so that the answer is the same everywhere.
"""
import os
import sys
from pathlib import Path

PACKAGE = 'trpo_robot'
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _candidates():
    env = os.environ.get('TRPO_ROBOT_SHARE')
    if env:
        yield Path(env)
    yield _SOURCE_ROOT
    yield Path(sys.prefix) / 'share' / PACKAGE
    try:
        from ament_index_python.packages import get_package_share_directory
        yield Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - no ament index on this machine is a normal case
        return


def share_file(folder: str, name: str) -> Path:
    """Return the path of ``folder/name`` or raise FileNotFoundError naming where it looked."""
    tried = []
    for root in _candidates():
        path = root / folder / name
        if path.is_file():
            return path
        tried.append(str(path))
    raise FileNotFoundError(f'{folder}/{name} not found; looked in: ' + ', '.join(tried))


def urdf_path(robot: str) -> Path:
    """URDF of a robot by its short name: 'ur5' or 'dxl_arm'."""
    return share_file('urdf', f'{robot}.urdf')
