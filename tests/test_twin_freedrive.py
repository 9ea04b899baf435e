"""The MuJoCo twin's freedrive (``MujocoBackend.set_freedrive``), found by the lifecycle
like any backend's hook: servos let go, gravity compensation keeps the arm floating."""
from twin_loop import TwinLoop
import numpy as np

from trpo_robot.robot.lifecycle import Phase


def test_a_freedrive_reset_on_the_twin_lets_go_and_holds_again():
    loop = TwinLoop(reset_mode='freedrive')  # no freedrive= hook: the twin's own
    backend = loop.backend
    loop.until(Phase.RESET)
    assert backend.freedrive
    moved = backend.read().position + np.array([0.0, 0.0, 0.3, 0.0, 0.0, 0.0])
    backend.reset_state(moved)  # the operator's hand
    backend.data.qvel[backend._dadr[0]] = 0.3  # and a push on the base joint
    loop.tick()
    loop.tick()
    assert backend.read().velocity[0] > 0.2, 'a limp joint coasts, no servo brakes it'
    backend.data.qvel[backend._dadr[0]] = 0.0
    moved[0] = backend.data.qpos[backend._qadr[0]]
    for _ in range(100):  # 0.8 s: the arm floats where it was left
        loop.tick()
    np.testing.assert_allclose(backend.data.qpos[backend._qadr], moved, atol=2e-3)
    assert loop.lc.confirm()[0]
    loop.until(Phase.READY)
    assert not backend.freedrive
    backend.data.qvel[backend._dadr[0]] = 0.3  # now the servo holds: braked at once
    loop.tick()
    loop.tick()
    assert abs(backend.read().velocity[0]) < 0.05
