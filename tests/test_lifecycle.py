"""Episode lifecycle on the fast twin: stop, resets, timeouts, e-stop, pause, records."""
import logging

import numpy as np
import pytest

from trpo_robot.robot.lifecycle import LifecycleConfig, LifecycleError, Phase
from trpo_robot.robot.shield import Intervention
from trpo_robot.robot.teleop import joy_mapping

from twin_loop import TwinLoop

XBOX = joy_mapping('xbox')
AXES_CENTRED = (0.0,) * 8
NO_BUTTONS = (0,) * 11


def buttons(*pressed):
    out = [0] * 11
    for b in pressed:
        out[b] = 1
    return tuple(out)


@pytest.fixture
def loop():
    twin = TwinLoop()
    twin.ready()
    return twin


def test_startup_brings_the_arm_to_rest_then_resets(loop):
    hops = [(t.source, t.target) for t in loop.lc.transitions]
    assert hops == [(Phase.SAFE_STOP, Phase.RESET), (Phase.RESET, Phase.READY)]
    (record,) = loop.lc.resets
    assert record.reason == 'startup' and record.mode == 'auto' and not record.held
    assert record.seconds > 0 and record.wall_seconds > 0


def test_safe_stop_reaches_rest_within_the_acceleration_limit(loop):
    handover = loop.episode([1.0, -1.0], steps=25)  # 1 s: both joints at 0.3 rad/s
    assert np.abs(handover).max() == pytest.approx(0.3)
    record = loop.lc.end_episode('time limit')
    assert not record.aborted and loop.lc.phase is Phase.SAFE_STOP
    while loop.lc.phase is Phase.SAFE_STOP:
        loop.tick()
    stop = [c for c, p in zip(loop.sent, loop.phases) if p is Phase.SAFE_STOP]
    loop.assert_within_limits(stop, previous=handover)
    assert np.all(np.abs(np.diff(np.abs(stop), axis=0)) >= 0)  # braking only
    assert not np.any(stop[-1])
    assert np.abs(loop.read().velocity).max() < loop.lc.config.rest_velocity
    # 0.3 rad/s at 3 rad/s^2 is 0.1 s of braking, plus latency and the rest ticks.
    stop_seconds = loop.lc.transitions[-1].stamp - loop.lc.transitions[-2].stamp
    assert 0.1 <= stop_seconds <= 0.2


@pytest.mark.parametrize('task', ['ur5_reacher_2d', 'dxl_reacher'])
def test_auto_reset_reaches_the_start_pose(task):
    loop = TwinLoop(task, seed=3)
    loop.ready()
    handover = loop.episode([1.0, 1.0], steps=20)
    loop.lc.end_episode()
    loop.until(Phase.RESET)
    goal = loop.lc.goal
    loop.until(Phase.READY)
    loop.assert_within_limits(loop.sent, previous=handover)
    error = np.abs(loop.read().position - goal).max()
    assert error < loop.lc.config.auto_tolerance
    record = loop.lc.resets[-1]
    assert record.mode == 'auto' and record.reason == 'time limit'
    assert 0 < record.stop_seconds < record.seconds < 10


def test_estop_aborts_the_episode_and_brakes_the_agent_too(loop):
    loop.episode([1.0, 1.0], steps=10)
    ok, _ = loop.lc.engage_estop('test')
    assert ok and loop.lc.phase is Phase.ESTOP and not loop.lc.acting
    assert loop.env.shield.estopped  # an agent step in flight brakes as well
    _, _, _, _, info = loop.env.step(np.ones(2))
    assert info['interventions'] & Intervention.ESTOP
    record = loop.lc.end_episode()
    assert record.aborted and record.reason == 'e-stop: test'
    assert loop.lc.aborted_count == 1


def test_estop_latches_and_blocks_auto_reset_until_released(loop):
    loop.episode([1.0, 1.0], steps=20)
    loop.lc.end_episode()
    loop.until(Phase.RESET)
    for _ in range(10):
        loop.tick()  # the auto reset is moving the arm
    moving = loop.sent[-1].copy()
    assert np.any(moving)
    loop.lc.engage_estop('operator')
    for _ in range(300):
        loop.tick()
    after = np.abs(np.array(loop.sent[-300:]))
    assert np.all(np.diff(after, axis=0) <= 1e-12)  # only ever slowing down
    assert not np.any(after[-250:])
    assert loop.lc.phase is Phase.ESTOP
    assert loop.lc.confirm()[0] is False
    assert loop.lc.request_reset()[0] is False
    with pytest.raises(LifecycleError):
        loop.lc.start_episode()
    q = loop.read().position
    assert np.abs(loop.read().velocity).max() < 0.01
    ok, _ = loop.lc.release_estop()
    assert ok and loop.lc.phase is Phase.HOLD and not loop.env.shield.estopped
    for _ in range(50):
        loop.tick()
    assert not np.any(loop.sent[-50:])  # released into a hold, not into motion
    assert np.abs(loop.read().position - q).max() < 1e-3
    assert loop.lc.request_reset()[0]
    loop.until(Phase.READY)
    assert loop.lc.resets[-1].held


def test_estop_latched_directly_on_the_agent_shield_is_noticed(loop):
    loop.env.shield.engage_estop('another node')
    loop.tick()
    assert loop.lc.phase is Phase.ESTOP and loop.lc.shield.estop_reason == 'another node'


def test_fault_aborts_the_episode_and_holds(loop):
    loop.episode([0.5, 0.5], steps=5)
    loop.lc.fault('servo 2 overload')
    record = loop.lc.end_episode()
    assert record.aborted and 'servo 2 overload' in record.reason
    loop.until(Phase.HOLD)
    assert 'servo 2 overload' in loop.lc.transitions[-1].reason


def test_teleop_reset_timeout_ends_in_hold(caplog):
    loop = TwinLoop(mapping=XBOX, reset_mode='teleop', reset_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger='trpo_robot.lifecycle'):
        loop.until(Phase.HOLD, max_ticks=200, axes=AXES_CENTRED, buttons=NO_BUTTONS)
    hold = loop.lc.transitions[-1]
    assert hold.source is Phase.RESET and 'not confirmed within 0.5 s' in hold.reason
    assert 0.5 < hold.stamp - loop.lc.transitions[-2].stamp < 0.52
    assert 'press Start (button 7) or call ~/reset_done' in caplog.text
    for _ in range(20):
        loop.tick(axes=(0.0, 1.0) + AXES_CENTRED[2:], buttons=buttons(XBOX.deadman))
    assert not np.any(loop.sent)  # a hold ignores the sticks
    loop.tick(axes=AXES_CENTRED, buttons=buttons(XBOX.confirm))
    loop.until(Phase.READY, max_ticks=10, axes=AXES_CENTRED, buttons=NO_BUTTONS)
    assert loop.lc.resets[-1].held and loop.lc.resets[-1].mode == 'teleop'


def test_auto_reset_that_cannot_arrive_ends_in_hold():
    loop = TwinLoop(auto_timeout=0.05)
    loop.until(Phase.HOLD, max_ticks=100)
    assert 'did not reach the start pose' in loop.lc.transitions[-1].reason
    assert 'reset_done' in loop.lc.instructions


def test_freedrive_waits_for_confirm():
    calls = []
    loop = TwinLoop(reset_mode='freedrive', freedrive=calls.append)
    loop.until(Phase.RESET)
    for _ in range(250):  # 2 s of nobody confirming
        loop.tick()
    assert loop.lc.phase is Phase.RESET and calls == [True]
    assert not np.any(loop.sent[-250:])
    assert loop.lc.confirm() == (True, 'confirmed')
    again = loop.lc.confirm()
    assert again == (True, 'already confirmed: waiting for the arm to be at rest')
    loop.until(Phase.READY, max_ticks=10)
    assert calls == [True, False]
    assert loop.lc.resets[-1].mode == 'freedrive'


def test_freedrive_is_switched_off_by_an_estop():
    calls = []
    loop = TwinLoop(reset_mode='freedrive', freedrive=calls.append)
    loop.until(Phase.RESET)
    loop.lc.engage_estop()
    assert calls == [True, False]


def test_pause_keeps_the_episode_holds_and_resume_resets(loop):
    loop.episode([1.0, 0.0], steps=5)
    loop.lc.pause()
    record = loop.lc.end_episode()
    assert not record.aborted and record.reason == 'paused (operator)'
    loop.until(Phase.HOLD)
    assert loop.lc.confirm()[0] is False and 'resume' in loop.lc.instructions
    for _ in range(20):
        loop.tick()
    assert loop.lc.phase is Phase.HOLD
    assert loop.lc.resume() == (True, 'resumed: resetting')
    loop.until(Phase.READY)
    loop.lc.start_episode()


def test_start_episode_needs_ready():
    loop = TwinLoop()
    with pytest.raises(LifecycleError, match='needs READY'):
        loop.lc.start_episode()
    with pytest.raises(LifecycleError, match='no episode'):
        loop.lc.end_episode()
    assert loop.lc.tick(loop.read()) is not None


def test_tick_returns_none_while_the_agent_acts(loop):
    loop.lc.start_episode()
    assert loop.lc.acting and loop.lc.tick(loop.read()) is None


def test_transition_log_and_phase_times(loop):
    loop.episode([0.5, 0.5], steps=10)
    loop.lc.end_episode()
    loop.until(Phase.READY)
    hops = [(t.source.name, t.target.name) for t in loop.lc.transitions[2:]]
    assert hops == [('READY', 'RUN'), ('RUN', 'SAFE_STOP'), ('SAFE_STOP', 'RESET'),
                    ('RESET', 'READY')]
    stamps = [t.stamp for t in loop.lc.transitions]
    assert stamps == sorted(stamps)
    seconds = loop.lc.phase_seconds()
    assert seconds['run'] == pytest.approx(0.4, abs=1e-9)
    assert seconds['reset'] > 0 and seconds['safe_stop'] > 0


def test_set_reset_mode_applies_from_the_next_reset(loop):
    assert loop.lc.set_reset_mode('teleop')[0] is False  # no gamepad mapping here
    assert loop.lc.set_reset_mode('freedrive')[0]
    assert loop.lc.request_reset('auto') == (True, 'auto reset started')
    assert loop.lc.reset_mode == 'auto'
    loop.until(Phase.READY)
    assert loop.lc.reset_mode == 'freedrive'


def test_config_is_validated():
    with pytest.raises(ValueError, match='reset_mode'):
        LifecycleConfig(reset_mode='magic')
    with pytest.raises(ValueError, match='rest_velocity'):
        LifecycleConfig(rest_velocity=0.0)


def test_holding_the_deadman_keeps_a_teleop_reset_alive_but_a_silent_pad_does_not():
    loop = TwinLoop(mapping=XBOX, reset_mode='teleop', reset_timeout=0.5)
    loop.until(Phase.RESET, axes=AXES_CENTRED, buttons=NO_BUTTONS)
    for _ in range(125):  # 1 s gripping, twice the timeout
        loop.tick(axes=AXES_CENTRED, buttons=buttons(XBOX.deadman))
    assert loop.lc.phase is Phase.RESET
    silent = loop.backend.now()
    loop.until(Phase.HOLD, max_ticks=200)  # the pad goes silent with the deadman down
    hold = loop.lc.transitions[-1]
    assert 'not confirmed within 0.5 s' in hold.reason
    # the last grip counts until its reading is stale (0.5 s), then the timeout runs
    assert hold.stamp - silent == pytest.approx(XBOX.timeout + 0.5, abs=0.02)


def test_for_env_sees_through_gymnasium_wrappers():
    import gymnasium as gym
    from trpo_robot.robot.lifecycle import EpisodeLifecycle
    loop = TwinLoop()
    wrapped = gym.wrappers.TimeLimit(loop.env, 100)
    lc = EpisodeLifecycle.for_env(wrapped)
    assert lc.shield.period == loop.backend.period
