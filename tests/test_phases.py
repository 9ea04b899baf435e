"""The lifecycle's phase machine alone: plain calls, no arm, no clock."""
import pytest

from trpo_robot.robot.phases import LifecycleError, Phase, PhaseMachine


def machine():
    """A machine and the list of (source, target, reason) it reports."""
    changes = []
    m = PhaseMachine(lambda *change: changes.append(change))
    return m, changes


def ready():
    """Past startup: stopped, auto reset done, READY."""
    m, changes = machine()
    assert m.rested('auto')  # startup stop -> RESET
    m.goal_reached()
    assert m.rested('auto')  # -> READY
    changes.clear()
    return m, changes


def test_startup_stops_then_resets_then_is_ready():
    m, changes = machine()
    assert m.phase is Phase.SAFE_STOP and not changes
    m.rested('teleop')
    assert changes == [(Phase.SAFE_STOP, Phase.RESET, 'teleop reset after: startup')]
    assert not m.rested('teleop')  # at rest, but nobody said the reset is done
    assert m.confirm(auto_reset=False) == (True, 'confirmed')
    assert m.confirm(auto_reset=False)[1].startswith('already confirmed')
    m.rested('teleop')
    assert changes[-1] == (Phase.RESET, Phase.READY, 'reset confirmed')


def test_an_episode_ends_in_a_stop_and_a_reset():
    m, changes = ready()
    m.start_episode('episode 0')
    assert m.acting
    m.stop('time limit')
    m.rested('auto')
    assert [c[1] for c in changes] == [Phase.RUN, Phase.SAFE_STOP, Phase.RESET]
    m.goal_reached()
    m.rested('auto')
    assert changes[-1] == (Phase.RESET, Phase.READY, 'start pose reached')


@pytest.mark.parametrize('phase_setup', ['startup', 'run', 'paused'])
def test_no_episode_starts_outside_ready_or_while_paused(phase_setup):
    m, _ = machine() if phase_setup == 'startup' else ready()
    if phase_setup == 'run':
        m.start_episode('episode 0')
    if phase_setup == 'paused':
        m.pause('operator')
    with pytest.raises(LifecycleError):
        m.start_episode('episode 1')


def test_an_auto_reset_cannot_be_confirmed_by_hand_and_a_running_episode_cannot_either():
    m, _ = machine()
    m.rested('auto')
    assert m.confirm(auto_reset=True) == (False, 'auto reset in progress: it ends by itself')
    assert not m.confirmed
    m, _ = ready()
    m.start_episode('episode 0')
    assert m.confirm(auto_reset=False) == (False, 'nothing to confirm in RUN')


def test_goal_reached_counts_only_in_a_reset():
    m, _ = ready()
    m.goal_reached()
    assert not m.confirmed and not m.rested('auto') and m.phase is Phase.READY


def test_a_fault_stops_then_holds_and_never_resets_by_itself():
    m, changes = ready()
    m.start_episode('episode 0')
    m.fault('fault: bus')
    m.rested('auto')
    assert m.phase is Phase.HOLD and changes[-1][2] == 'fault: bus'
    assert not m.rested('auto')  # at rest in HOLD: still held until the operator acts
    assert m.request_reset('auto reset requested') is None and m.phase is Phase.RESET


def test_a_pause_holds_and_resume_starts_a_fresh_reset():
    m, changes = ready()
    m.start_episode('episode 0')
    assert m.pause('paused (operator)') == (True, 'paused')
    assert m.phase is Phase.SAFE_STOP and m.after_stop is Phase.HOLD
    m.rested('auto')
    assert m.phase is Phase.HOLD
    assert m.reset_refusal().startswith('paused')
    assert m.confirm(auto_reset=False)[0] is False
    assert m.resume('auto') == (True, 'resumed: resetting') and m.phase is Phase.RESET
    assert m.resume('auto') == (False, 'not paused')


def test_a_pause_in_ready_holds_at_once():
    m, changes = ready()
    m.pause('paused (operator)')
    assert changes == [(Phase.READY, Phase.HOLD, 'paused (operator)')]


def test_a_stop_in_progress_only_changes_where_it_goes():
    m, changes = ready()
    m.start_episode('episode 0')
    m.stop('time limit')
    m.fault('fault: late')
    assert [c[1] for c in changes] == [Phase.RUN, Phase.SAFE_STOP]  # no second SAFE_STOP
    m.rested('auto')
    assert m.phase is Phase.HOLD


def test_the_estop_is_left_only_by_release_and_then_holds():
    m, changes = ready()
    m.start_episode('episode 0')
    m.estop('e-stop: operator')
    assert m.phase is Phase.ESTOP
    m.fault('fault: after')  # an e-stop stays an e-stop
    m.estop('e-stop: again')
    assert not m.rested('auto') and m.phase is Phase.ESTOP
    assert m.reset_refusal() == 'cannot reset from ESTOP'
    with pytest.raises(LifecycleError):
        m.request_reset('auto reset requested')
    assert [c[1] for c in changes] == [Phase.RUN, Phase.ESTOP]
    assert m.release() == (True, 'e-stop released: arm held')
    assert m.phase is Phase.HOLD and m.release()[0] is False


def test_resume_during_an_estop_says_it_is_still_engaged():
    m, _ = ready()
    m.pause('paused (operator)')
    m.estop('e-stop: operator')
    ok, message = m.resume('auto')
    assert ok and 'still engaged' in message and m.phase is Phase.ESTOP


def test_a_confirmed_hold_becomes_ready_once_at_rest():
    m, changes = ready()
    m.request_reset('auto reset requested')
    m.hold('auto reset did not reach the start pose')
    assert m.confirm(auto_reset=True) == (True, 'confirmed')  # in HOLD the mode is moot
    m.rested('auto')
    assert changes[-1] == (Phase.HOLD, Phase.READY, 'reset confirmed')


def test_every_change_clears_the_confirmation():
    m, _ = machine()
    m.rested('freedrive')
    m.confirm(auto_reset=False)
    m.hold('timeout')
    assert not m.confirmed
