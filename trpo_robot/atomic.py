"""Durable, all-or-nothing file writes for checkpoints and recorded episodes."""
import os
import tempfile
from pathlib import Path


def atomic_write(path, data: bytes) -> Path:
    """Write to a temporary file beside `path`, fsync it, rename it over `path`, fsync the
    folder: after a crash the file is either the old one or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
