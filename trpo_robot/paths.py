"""Finds the package's shared files (urdf/, sim/, config/, launch/) wherever it is installed.

A source checkout, a pip install (data_files under ``<prefix>/share/trpo_robot``) and a
colcon install (the ament index) lay these folders out differently; every caller asks here
so that the answer is the same everywhere.
"""
import os
import sys
from pathlib import Path

PACKAGE = 'trpo_robot'
CHECKPOINT_META = 'meta.json'
"""The file that makes a folder a checkpoint (trpo_robot/trpo/checkpoint.py)."""
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


def checkpoint_folder(path) -> Path:
    """The checkpoint a user means: the folder itself, or the ``checkpoint/`` inside a run
    folder (``train --out``, ``learn --out``). Here, not in trpo/checkpoint.py, so that the
    launch plan can resolve it without importing torch."""
    path = Path(path)
    inner = path / 'checkpoint'
    return inner if (inner / CHECKPOINT_META).exists() else path
