"""Shared pieces of the Dynamixel tests: an emulator on a real pty, and a backend on it."""
import contextlib

from trpo_robot.hw.backend import DynamixelBackend
from trpo_robot.hw.config import load_config
from trpo_robot.dxl_emulator import Emulator
from trpo_robot.paths import urdf_path
from trpo_robot.robot.spec import RobotSpec

LATENCY_TIMER_MS = 16.0
"""Reply timeout basis for tests: dynamixel-sdk's default (34 ms), because on a loaded
2-core machine the emulated servo is itself sometimes descheduled for over 10 ms. On
hardware with the adapter at 1 ms, config/dxl_hw.yaml uses 1."""


def dxl_config(link, **overrides):
    overrides.setdefault('latency_timer_ms', LATENCY_TIMER_MS)
    return load_config(port=str(link), **overrides)


def dxl_spec():
    return RobotSpec.from_urdf(urdf_path('dxl_arm'), ee_link='ee_link')


EMULATOR_PRIORITY = 60
"""SCHED_FIFO priority of the emulated servos (where permitted): a real servo is its own
processor, and on a loaded 2-core machine a normal-priority emulator is sometimes
descheduled for longer than any reply timeout."""


@contextlib.contextmanager
def running_emulator(link, **kwargs):
    """An emulator child process that is stopped whatever happens in the test."""
    if not kwargs.get('thread'):
        kwargs.setdefault('priority', EMULATOR_PRIORITY)
    emulator = Emulator(link, **kwargs)
    try:
        yield emulator.start()
    finally:
        emulator.stop()


@contextlib.contextmanager
def connected_backend(emulator, **overrides):
    backend = DynamixelBackend(dxl_config(emulator.link, baud=emulator.baud, **overrides),
                               dxl_spec(), time_scale=emulator.real_time_factor)
    try:
        yield backend
    finally:
        backend.close()
