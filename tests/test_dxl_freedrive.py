"""Freedrive resets on the Dynamixel arm through the real serial path: the lifecycle ->
DynamixelBackend -> dynamixel-sdk -> pty -> emulated servos -> MuJoCo twin. The emulator's
``hand`` stands in for the operator who moves the limp arm."""
from dxl_support import connected_backend, dxl_spec
import numpy as np
import pytest

from trpo_robot.hw import units
from trpo_robot.hw.bus import ServoFault
from trpo_robot.hw.emulator import EmulatorError
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, Phase
from trpo_robot.robot.tasks import get_task
from trpo_robot.twin.emulator_physics import EmulatorPhysics

IDS = (1, 2, 3)
COUNTS = 3 * units.POSITION_UNIT
"""A few position counts: what the read may differ from where the hand left a joint."""


class Loop:
    """The actor's loop outside RUN (``Actor._cycle``): read, tick, send, one period."""

    def __init__(self, backend):
        self.backend = backend
        self.env = ArmEnv(backend, get_task('dxl_reacher'), dxl_spec())
        self.env.reset(seed=0, options={'in_place': True})
        self.lc = EpisodeLifecycle.for_env(self.env, LifecycleConfig(reset_mode='freedrive'))
        self.sent = []

    def tick(self):
        command = self.lc.tick(self.backend.read())
        self.sent.append((self.lc.phase, command.copy()))
        self.backend.send_velocity(command)
        self.backend.advance(self.backend.period)

    def until(self, phase, max_ticks=500):
        for _ in range(max_ticks):
            if self.lc.phase is phase:
                return
            self.tick()
        raise AssertionError(f'still {self.lc.phase} after {max_ticks} ticks, not {phase}')


@pytest.fixture
def loop(emulator):
    with connected_backend(emulator) as backend:
        yield Loop(backend)


def _torque(emulator):
    return [emulator.peek(sid, 'torque_enable') for sid in IDS]


def test_a_freedrive_reset_lets_the_hand_move_the_arm_and_holds_it_there(emulator, loop):
    backend = loop.backend
    loop.until(Phase.RESET)
    assert _torque(emulator) == [0, 0, 0] and backend.freedrive
    for _ in range(10):  # the lifecycle's zero commands do not turn the torque on
        loop.tick()
    assert _torque(emulator) == [0, 0, 0]
    start = backend.read().position.copy()
    moved = start + np.array([0.0, 0.3, 0.0])
    emulator.hand({2: moved[1]})
    for _ in range(20):
        loop.tick()
    np.testing.assert_allclose(backend.read().position, moved, atol=COUNTS)
    assert loop.lc.confirm()[0]
    loop.until(Phase.READY)
    assert _torque(emulator) == [1, 1, 1] and not backend.freedrive
    freedrive = [command for phase, command in loop.sent if phase is Phase.RESET]
    assert freedrive and not np.any(freedrive)
    for _ in range(30):  # held by the servos where the hand left it
        loop.tick()
    np.testing.assert_allclose(backend.read().position, moved, atol=COUNTS)
    assert backend.fault is None


def test_a_hand_cannot_move_a_servo_that_holds(emulator, loop):
    assert _torque(emulator) == [1, 1, 1]
    with pytest.raises(EmulatorError, match='torque on'):
        emulator.hand({2: 0.5})


@pytest.mark.parametrize('limp', [False, True])
def test_a_limp_joint_in_the_twin_is_not_held_by_its_servo(limp):
    physics = EmulatorPhysics(3)  # the emulator's MuJoCo twin, as the server steps it
    physics.set_limp([limp, False, False])
    physics.data.qvel[physics._dadr[0]] = 1.0  # a push on joint 1
    for _ in range(25):  # 50 ms with zero velocity commands
        physics.step(np.zeros(3))
    speed = physics.velocities()[0]
    if limp:  # coasts: only joint damping and friction slow it down
        assert speed > 0.8
    else:  # the velocity servo brakes it to its zero command within a few ms
        assert abs(speed) < 0.05


def test_an_estop_during_freedrive_turns_the_torque_back_on(emulator, loop):
    loop.until(Phase.RESET)
    assert _torque(emulator) == [0, 0, 0]
    loop.lc.engage_estop('test')
    assert loop.lc.phase is Phase.ESTOP
    assert _torque(emulator) == [1, 1, 1] and not loop.backend.freedrive
    for _ in range(10):
        loop.tick()
    assert _torque(emulator) == [1, 1, 1]
    with pytest.raises(EmulatorError):
        emulator.hand({2: 0.3})


def test_velocity_commands_in_freedrive_never_turn_the_torque_on(emulator, loop):
    backend = loop.backend
    backend.set_freedrive(True)
    before = backend.read().position.copy()
    for _ in range(20):
        backend.send_velocity([0.5, -0.5, 0.5])
        backend.advance(backend.period)
    assert _torque(emulator) == [0, 0, 0]
    assert [emulator.peek(sid, 'goal_velocity') for sid in IDS] == [0, 0, 0]
    assert backend.counters['freedrive_ignored'] == 20
    np.testing.assert_allclose(backend.read().position, before, atol=COUNTS)
    backend.set_freedrive(False)
    assert _torque(emulator) == [1, 1, 1]
    backend.send_velocity([0.5, 0.0, 0.0])
    assert emulator.peek(1, 'goal_velocity') == units.velocity_to_raw(0.5)


def test_a_servo_that_refuses_torque_after_freedrive_faults_naming_it(emulator, loop):
    backend = loop.backend
    backend.set_freedrive(True)
    emulator.inject('hw-error=2:overheating')  # it overheated while the arm was limp
    with pytest.raises(ServoFault, match='servo 2: torque refused'):
        backend.set_freedrive(False)
    assert backend.fault is not None and backend.fault.servo_id == 2
    assert _torque(emulator) == [0, 0, 0]  # the fault path: every servo off
    backend.set_freedrive(False)  # the lifecycle leaving RESET after the fault: no raise
    assert not backend.freedrive
    with pytest.raises(ServoFault, match='reconnect'):
        backend.send_velocity([0.0, 0.0, 0.0])
