"""Errors every layer may raise for the command line to report, and the checks that raise
them before long work starts.

Here, below every layer, so that the subcommands of the hardware and ROS layers raise the
CLI's error without importing the CLI (which sits above them).
"""
from pathlib import Path


class UsageError(Exception):
    """A problem with what the user asked for: reported as one line, exit code 2."""


def writable_folder(text, option) -> Path:
    """The folder, made if need be, once a file could be written in it: a bad --out fails
    now, in one line, not after the first hour of training."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / '.trpo_robot_write_check'
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as e:
        raise UsageError(f'{option} {text}: cannot write there ({e.strerror or e})') from None
    return path


def tensorboard_folder(text) -> Path:
    """--tensorboard's folder, once the package that writes event files is importable: a
    missing package fails now, not at the end of the first batch."""
    import importlib.util
    if importlib.util.find_spec('tensorboard') is None:
        raise UsageError(f'--tensorboard {text}: the tensorboard package is not installed '
                         "(pip install 'tensorboard>=2.14')")
    return writable_folder(text, '--tensorboard')
