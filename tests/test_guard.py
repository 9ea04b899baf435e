"""The command guard's decisions and the arm-follows-command watchdog, without ROS."""
import numpy as np
import pytest

from trpo_robot.robot.follow import FollowWatchdog
from trpo_robot.robot.guard import CommandGuard, RELAYING, WAITING

LIMITS = np.array([3.14, 3.14, 1.0])
PERIOD = 0.008


def _guard(timeout=0.08):
    return CommandGuard(LIMITS, timeout)


def test_relays_valid_commands_unchanged():
    g = _guard()
    assert g.state == WAITING
    assert g.on_tick(0.0) is None  # nothing to stop before the actor spoke
    out = g.on_command([0.1, -0.2, 0.3], stamp=0.99, now=1.0)
    np.testing.assert_array_equal(out, [0.1, -0.2, 0.3])
    assert g.state == RELAYING


def test_a_stale_stream_is_zeroed_once_the_timeout_has_passed_and_not_before():
    g = _guard(timeout=0.08)
    g.on_command([0.1, 0.1, 0.1], stamp=1.0, now=1.0)
    assert g.on_tick(1.072) is None
    out = g.on_tick(1.08)
    np.testing.assert_array_equal(out, np.zeros(3))
    assert g.state.startswith('stopped: no command')
    assert g.last_stop_age == pytest.approx(0.08)
    assert g.counters['stale'] == 1


def test_zero_is_sent_once_per_stop_and_a_new_command_resumes():
    g = _guard(timeout=0.08)
    g.on_command([0.1, 0.1, 0.1], stamp=0.0, now=0.0)
    np.testing.assert_array_equal(g.on_tick(0.1), np.zeros(3))
    assert all(g.on_tick(t) is None for t in (0.15, 0.18, 0.5))
    np.testing.assert_array_equal(g.on_command([0.2, 0.0, 0.0], stamp=0.59, now=0.6),
                                  [0.2, 0.0, 0.0])
    assert g.relaying


def test_a_repeated_command_is_sent_again_only_once_per_timeout():
    """The driver holds what it was sent: the actor's per-tick heartbeat is not relayed,
    except once per timeout for a driver with a command timeout of its own."""
    g = _guard(timeout=0.08)
    command = [0.1, 0.2, 0.3]
    sent = [g.on_command(command, t - PERIOD, t) is not None
            for t in np.arange(0.0, 0.2, PERIOD)]
    assert sent[0] and sum(sent) == 3  # at 0, 0.08 and 0.16 s
    np.testing.assert_array_equal(g.on_command([0.1, 0.2, 0.31], 0.2, 0.208),
                                  [0.1, 0.2, 0.31])  # a change goes at once
    assert g.relaying and g.counters['relayed'] == 26 and g.counters['sent'] == 4


def test_a_command_decided_before_the_stop_never_restarts_the_arm():
    """A dead actor's last command still queued when the stop fires (seen on a loaded
    machine: the twin moved 0.037 rad after the guard had brought it to rest)."""
    g = _guard(timeout=0.08)
    g.on_command([0.1, 0.1, 0.1], stamp=0.0, now=0.0)
    np.testing.assert_array_equal(g.on_tick(0.08), np.zeros(3))
    for stamp in (0.0, 0.072, 0.08):  # answered a state from before, or of, the stop
        assert g.on_command([0.1, 0.1, 0.1], stamp=stamp, now=0.088) is None
    assert not g.relaying and g.counters['late'] == 3
    assert g.on_tick(0.5) is None  # and no second zero: nothing was relayed
    np.testing.assert_array_equal(g.on_command([0.1, 0.1, 0.1], stamp=0.088, now=0.096),
                                  [0.1, 0.1, 0.1])  # a state after the stop: a live actor
    assert g.relaying


@pytest.mark.parametrize('names, stamp, cause', [
    (('a', 'c', 'b'), 0.01, "bad command: joints ['a', 'c', 'b'] are not"),
    (('a', 'b', 'c'), float('nan'), 'bad command: non-finite stamp'),
    (('a', 'b', 'c'), None, 'bad command: no stamp'),
])
def test_commands_for_other_joints_or_without_a_stamp_stop_the_arm(names, stamp, cause):
    g = CommandGuard(LIMITS, 0.08, joint_names=('a', 'b', 'c'))
    np.testing.assert_array_equal(g.on_command([0.1, 0.1, 0.1], 0.0, 0.0, ('a', 'b', 'c')),
                                  [0.1, 0.1, 0.1])
    np.testing.assert_array_equal(g.on_command([0.1, 0.1, 0.1], stamp, 0.01, names),
                                  np.zeros(3))
    assert g.last_stop_cause.startswith(cause)


@pytest.mark.parametrize('bad, cause', [
    ([0.1, 0.2], 'bad command: 2 values'),
    ([0.1, float('nan'), 0.0], 'bad command: non-finite'),
    ([0.1, 0.2, 1.5], 'bad command: joint 2 at 1.500'),
    ([], 'the actor said it is stopping'),
])
def test_bad_or_goodbye_commands_become_zero(bad, cause):
    g = _guard()
    g.on_command([0.1, 0.1, 0.1], stamp=0.0, now=0.0)
    out = g.on_command(bad, stamp=0.008, now=0.01)
    np.testing.assert_array_equal(out, np.zeros(3))
    assert g.last_stop_cause.startswith(cause)


def test_a_publisher_that_left_the_graph_stops_the_arm_at_once():
    g = _guard(timeout=10.0)
    g.on_command([0.1, 0.1, 0.1], stamp=0.0, now=0.0)
    assert g.on_tick(0.008, publishers=None) is None
    np.testing.assert_array_equal(g.on_tick(0.016, publishers=0), np.zeros(3))
    assert g.counters['publisher_gone'] == 1


def test_the_guard_never_outputs_anything_but_the_last_command_or_zero():
    rng = np.random.default_rng(0)
    g = _guard(timeout=0.05)
    last_valid, now = None, 0.0
    for _ in range(2000):
        now += PERIOD
        if rng.random() < 0.5:
            size = rng.choice([0, 2, 3, 3, 3])
            values = rng.normal(0, 1.5, size)
            if size and rng.random() < 0.1:
                values[0] = np.inf
            stopped_at = g.last_stop_time
            stamp = now - rng.choice([0.0, PERIOD, 8 * PERIOD])
            out = g.on_command(values, stamp, now)
            if out is not None and g.relaying:
                last_valid = values
                assert not stamp <= stopped_at, 'relayed a command from before a stop'
            else:
                assert out is None or not np.any(out)
        else:
            out = g.on_tick(now)
        if out is not None:
            zero = not np.any(out)
            assert zero or (last_valid is not None and np.array_equal(out, last_valid))
            assert np.all(np.abs(out) <= LIMITS)


def _follow(**kw):
    return FollowWatchdog(PERIOD, lag=0.04, window=0.1, **kw)


def test_follow_check_is_quiet_for_an_arm_that_follows_after_its_lag():
    w = _follow()
    command = np.array([0.3, -0.2])
    lag = w.lag_ticks
    for tick in range(200):
        velocity = command if tick >= lag else np.zeros(2)
        assert not w.tick(command, velocity)


def test_follow_check_fires_after_the_window_for_an_arm_that_stands_still():
    w = _follow()
    command = np.array([0.3, -0.2])
    fired = [w.tick(command, np.zeros(2)) for _ in range(w.lag_ticks + w.window_ticks)]
    assert fired[-1] and not any(fired[:-1])
    assert 'protective stop' in w.explain()


def test_follow_check_ignores_small_commands_and_a_reduced_speed_scaling():
    w = _follow()
    for _ in range(100):
        assert not w.tick([0.01, 0.0], np.zeros(2))  # below min_speed: nothing to judge
    w.reset()
    w.speed_scaling = 0.3  # the pendant's slider at 30 %
    command = np.array([0.3, 0.0])
    for _ in range(100):
        assert not w.tick(command, 0.3 * command)


def test_follow_check_takes_a_lagging_arm_for_a_moving_one_and_zero_scaling_for_a_halt():
    w = _follow()
    command = np.array([0.3, 0.0])
    # Still moving the previous command's way (a twin late at a high real-time factor):
    # not a stopped arm, which is what the check is for.
    assert not any(w.tick(command, -command) for _ in range(100))
    w.reset()
    w.speed_scaling = 0.0
    assert any(w.tick(command, command) for _ in range(100))
    assert 'speed scaling 0 %' in w.explain()


def test_before_its_first_joint_state_the_guard_keeps_the_commands_own_time():
    """A guard whose joint_states have not arrived yet (a late match on a loaded host)
    paces repeats by the commands' stamps, so the actor keeps hearing relays, and its
    first tick measures the stream's age from them, not from a clock frozen at 0."""
    g = _guard(timeout=0.08)
    np.testing.assert_array_equal(g.on_command([0.1, 0.1, 0.1], stamp=6.0, now=None),
                                  [0.1, 0.1, 0.1])
    assert g.on_command([0.1, 0.1, 0.1], stamp=6.04, now=None) is None  # the driver holds it
    np.testing.assert_array_equal(g.on_command([0.1, 0.1, 0.1], stamp=6.08, now=None),
                                  [0.1, 0.1, 0.1])  # once a timeout: the heartbeat relay
    assert g.on_tick(6.1) is None and g.relaying  # 20 ms old, not seconds
    np.testing.assert_array_equal(g.on_tick(6.16), np.zeros(3))
    assert g.last_stop_age == pytest.approx(0.08)
    assert g.on_command([0.1, 0.1, 0.1], stamp=float('nan'), now=None) is not None
    assert g.state.startswith('stopped: bad command: non-finite stamp')


def test_without_joint_states_the_guard_sends_zero_and_relays_nothing_until_one_comes():
    """The driver's clock gone (its joint_state_broadcaster off, the velocity controller
    running on): no check by driver time can fire, so the node reports the silence and the
    guard stops the arm; the actor's commands, even fresh ones, wait for a joint state."""
    g = _guard(timeout=0.08)
    g.on_command([0.1, 0.1, 0.1], stamp=1.0, now=1.0)
    np.testing.assert_array_equal(g.on_clock_lost(2.0, now=1.0), np.zeros(3))
    assert g.state.startswith('stopped: no joint_states for 2.0 s of wall time')
    assert g.counters['clock_lost'] == 1 and g.clock_lost
    assert g.on_command([0.2, 0.0, 0.0], stamp=1.5, now=1.0) is None  # newer, yet held
    assert g.on_clock_lost(3.0, now=1.0) is None  # zero went once
    assert g.counters['clockless'] == 1 and not g.relaying
    assert g.on_tick(1.6) is None and not g.clock_lost
    np.testing.assert_array_equal(g.on_command([0.2, 0.0, 0.0], stamp=1.6, now=1.6),
                                  [0.2, 0.0, 0.0])
    assert g.relaying


def test_a_guard_that_never_heard_a_joint_state_in_time_relays_nothing():
    """Counted from its start before the first state: a command to a guard that has no
    clock is dropped, not relayed on its own stamp; the actor waits for the relay."""
    g = _guard(timeout=0.08)
    assert g.on_clock_lost(2.0, now=0.0) is None  # not relaying: nothing to stop
    assert g.on_command([0.1, 0.1, 0.1], stamp=6.0, now=None) is None
    assert g.state == WAITING and g.counters['clockless'] == 1
    assert g.on_command([], stamp=6.0, now=None) is not None  # a goodbye still stops
