"""Gamepad and keyboard teleop: the pure mapping rules, then teleop resets on the twin."""
import math

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from trpo_robot.robot.keyboard import decode_keys, KEYBOARD_MAPPING, KeyboardConfig, \
    KeyboardJoy
from trpo_robot.robot.lifecycle import Phase
from trpo_robot.robot.shield import Intervention
from trpo_robot.robot.teleop import joy_mapping, JoyEvent, JoyMapping, JoyMappingError, \
    load_joy_mappings, TeleopMapper

from twin_loop import TwinLoop

XBOX = joy_mapping('xbox')
LIMIT = np.array([0.3, 0.3, 0.3])


class Clock:
    def __init__(self):
        self.t = 50.0

    def __call__(self):
        return self.t


def pad(*pressed, stick=0.0, second=0.0, n_buttons=11, n_axes=8):
    axes = [0.0] * n_axes
    axes[XBOX.axis], axes[XBOX.second_axis] = stick, second
    out = [0] * n_buttons
    for b in pressed:
        out[b] = 1
    return axes, out


@pytest.fixture
def mapper():
    clock = Clock()
    return TeleopMapper(XBOX, LIMIT, clock=clock), clock


def feed(mapper, clock, *pressed, stick=0.0, second=0.0):
    axes, buttons = pad(*pressed, stick=stick, second=second)
    return mapper.update(axes, buttons, clock.t)


# ---------------------------------------------------------------- mapper rules

def test_no_motion_without_the_deadman(mapper):
    m, clock = mapper
    out = feed(m, clock, stick=1.0)
    assert not out.velocity.any() and out.reason == 'hold LB (button 4) to jog'


def test_stick_must_be_centred_after_the_deadman_is_pressed(mapper):
    m, clock = mapper
    out = feed(m, clock, XBOX.deadman, stick=1.0)
    assert not out.velocity.any() and out.reason == 'centre the stick first'
    feed(m, clock, XBOX.deadman)
    out = feed(m, clock, XBOX.deadman, stick=1.0, second=-1.0)
    assert out.velocity == pytest.approx([0.1 * 0.3, -0.1 * 0.3, 0.0]) and out.reason == ''


def test_deadzone_ramps_from_zero(mapper):
    m, clock = mapper
    feed(m, clock, XBOX.deadman)
    edge = feed(m, clock, XBOX.deadman, stick=XBOX.deadzone + 1e-6).velocity[0]
    half = feed(m, clock, XBOX.deadman, stick=0.55).velocity[0]
    assert 0 < edge < 1e-6 and half == pytest.approx(0.5 * 0.03)


def test_releasing_the_deadman_zeroes_at_once(mapper):
    m, clock = mapper
    feed(m, clock, XBOX.deadman)
    assert feed(m, clock, XBOX.deadman, stick=1.0).velocity.any()
    out = feed(m, clock, stick=1.0)
    assert not out.velocity.any()
    assert not m.velocity_at(clock.t)[0].any()
    out = feed(m, clock, XBOX.deadman, stick=1.0)  # a fresh grip with the stick pushed
    assert not out.velocity.any() and out.reason == 'centre the stick first'


def test_old_readings_give_zero(mapper):
    m, clock = mapper
    feed(m, clock, XBOX.deadman)
    assert feed(m, clock, XBOX.deadman, stick=1.0).velocity.any()
    clock.t += XBOX.timeout + 0.01
    velocity, reason = m.velocity_at()
    assert not velocity.any() and reason.startswith('no Joy message for')
    axes, buttons = pad(XBOX.deadman, stick=1.0)
    out = m.update(axes, buttons, clock.t - 1.0)
    assert not out.velocity.any() and out.reason == 'Joy message 1.00 s old'
    out = m.update(axes, buttons, clock.t + 1.0)
    assert not out.velocity.any() and 'ahead of the actor clock' in out.reason


@pytest.mark.parametrize('axes, buttons, why', [
    ([0.0] * 8, [0] * 5, '5 buttons, the mapping needs 8'),
    ([0.0] * 3, [0] * 11, '3 axes, the mapping needs 5'),
    ([0.0, math.nan] + [0.0] * 6, [0] * 11, 'NaN or infinite'),
    ([0.0, 3.0] + [0.0] * 6, [0] * 11, 'outside [-1, 1]'),
    ([0.0] * 8, [0, 2] + [0] * 9, 'neither 0 nor 1'),
    ([0.0] * 8, ['a'] * 11, 'not integers'),
    ('junk', [0] * 11, 'not numbers'),
])
def test_malformed_readings_give_zero_and_say_why(mapper, axes, buttons, why):
    m, clock = mapper
    feed(m, clock, XBOX.deadman)
    feed(m, clock, XBOX.deadman, stick=1.0)
    buttons = list(buttons)
    if len(buttons) > XBOX.deadman and buttons[XBOX.deadman] == 0 and why != 'not integers':
        buttons[XBOX.deadman] = 1
    out = m.update(axes, buttons, clock.t)
    assert not out.velocity.any() and out.reason.startswith('malformed') and why in out.reason
    assert not m.velocity_at()[0].any()


def test_nan_stamp_is_malformed(mapper):
    m, clock = mapper
    axes, buttons = pad(XBOX.deadman)
    assert 'stamp' in m.update(axes, buttons, math.nan).reason


def test_confirm_is_edge_triggered(mapper):
    m, clock = mapper
    feed(m, clock)
    confirms = [feed(m, clock, XBOX.confirm).events for _ in range(20)]
    assert sum(JoyEvent.CONFIRM in e for e in confirms) == 1
    feed(m, clock)
    assert JoyEvent.CONFIRM in feed(m, clock, XBOX.confirm).events


def test_first_reading_can_estop_but_not_confirm(mapper):
    m, clock = mapper
    out = feed(m, clock, XBOX.confirm, XBOX.estop)
    assert out.events == (JoyEvent.ESTOP,)
    assert feed(m, clock, XBOX.confirm, XBOX.estop).events == ()


def test_estop_counts_even_in_a_stale_reading(mapper):
    m, clock = mapper
    feed(m, clock)
    axes, buttons = pad(XBOX.estop, XBOX.confirm)
    out = m.update(axes, buttons, clock.t - 5.0)
    assert out.events == (JoyEvent.ESTOP,) and not out.velocity.any()


def test_joint_selection_cycles_and_needs_a_centred_stick(mapper):
    m, clock = mapper
    feed(m, clock, XBOX.deadman)
    assert m.selected == 0
    out = feed(m, clock, XBOX.deadman, XBOX.prev_joint)
    assert out.events == (JoyEvent.SELECT,) and m.selected == 2
    feed(m, clock, XBOX.deadman)
    feed(m, clock, XBOX.deadman, XBOX.next_joint)
    assert m.selected == 0
    feed(m, clock, XBOX.deadman)
    feed(m, clock, XBOX.deadman, XBOX.next_joint, stick=1.0)
    assert m.selected == 1
    assert feed(m, clock, XBOX.deadman, stick=1.0).reason == 'centre the stick first'
    feed(m, clock, XBOX.deadman)
    out = feed(m, clock, XBOX.deadman, stick=-1.0, second=1.0)
    assert out.velocity == pytest.approx([0.0, -0.03, 0.03])
    feed(m, clock, XBOX.deadman, XBOX.next_joint)
    feed(m, clock, XBOX.deadman)
    out = feed(m, clock, XBOX.deadman, stick=1.0, second=1.0)
    assert out.velocity == pytest.approx([0.0, 0.0, 0.03])  # no joint after the last


def test_jog_only_the_allowed_joints():
    clock = Clock()
    mapping = JoyMapping(joint_buttons=(5, 6))
    m = TeleopMapper(mapping, [1.0] * 6, joints=(1, 2), clock=clock,
                     joint_names=[f'j{i}' for i in range(6)])
    assert m.selected == 1 and m.describe_selection() == 'j1 (+ j2)'
    m.update(*pad(mapping.deadman), clock.t)  # a first reading cannot select
    axes, buttons = pad(mapping.deadman, 6)
    m.update(axes, buttons, clock.t)
    assert m.selected == 2
    m.update(*pad(mapping.deadman), clock.t)
    out = m.update(*pad(mapping.deadman, stick=1.0), clock.t)
    assert out.velocity == pytest.approx([0, 0, 0.1, 0, 0, 0])


def test_mapper_rejects_bad_limits():
    with pytest.raises(ValueError, match='max_velocity'):
        TeleopMapper(XBOX, [0.3, math.inf])
    with pytest.raises(ValueError, match='joints'):
        TeleopMapper(XBOX, LIMIT, joints=(3,))


# ---------------------------------------------------------------- mappings from YAML

def test_shipped_layouts_load_and_agree_where_they_should():
    layouts = load_joy_mappings()
    assert {'xbox', 'f710', 'f710_dinput', 'ps4', 'sdl'} <= set(layouts)
    xbox, f710 = layouts['xbox'], layouts['f710']
    assert f710.buttons_used == xbox.buttons_used and f710.axis == xbox.axis
    for mapping in layouts.values():
        names = mapping.button_names
        assert len(names) > max(b for b in mapping.buttons_used if b is not None)
        assert mapping.description
    assert layouts['ps4'].label(layouts['ps4'].estop) == 'Circle (button 1)'
    assert layouts['sdl'].label(layouts['sdl'].deadman) == 'LeftShoulder (button 9)'


def test_mapping_from_a_file(tmp_path):
    path = tmp_path / 'pads.yaml'
    path.write_text('mine:\n  deadman: 5\n  confirm: 0\n  estop: 2\n  next_joint: null\n'
                    '  prev_joint: null\n  joint_buttons: [6, 7]\n')
    mapping = joy_mapping('mine', path)
    assert mapping.joint_buttons == (6, 7) and mapping.next_joint is None
    with pytest.raises(JoyMappingError, match=r"choose from \['mine'\]"):
        joy_mapping('xbox', path)


@pytest.mark.parametrize('text, match', [
    ('p:\n  deadmen: 4\n', 'unknown field'),
    ('p:\n  deadman: 1\n  estop: 1\n', 'used twice'),
    ('p:\n  deadzone: 1.0\n', 'deadzone'),
    ('p:\n  velocity_scale: 0\n', 'velocity_scale'),
    ('p:\n  next_joint: null\n', 'both next_joint and prev_joint'),
    ('p:\n  axis: -1\n', 'axis'),
    ('p:\n  confirm: 2.5\n', 'confirm'),
    ('p:\n  second_axis: 1\n', 'second_axis'),
    ('p: [1, 2]\n', 'mapping of fields'),
    ('[1, 2]\n', 'layout name'),
    ('p: {deadman: [\n', 'not valid YAML'),
])
def test_bad_mappings_say_what_is_wrong(tmp_path, text, match):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(JoyMappingError, match=match):
        load_joy_mappings(path)


# ---------------------------------------------------------------- keyboard

def test_decode_keys():
    data = b' \x1b[A\x1b[B\x1bOC\x1b[D\rE3\x03\x1b'
    assert decode_keys(data) == ['space', 'up', 'down', 'right', 'left', 'enter', 'e', '3',
                                 'ctrl-c', 'escape']


def test_keyboard_deadman_toggles_and_lets_go_by_itself():
    kb = KeyboardJoy(KeyboardConfig(deadman_timeout=2.0))
    assert kb.press('space', 0.0) == 'deadman ON'
    assert kb.state(1.9)[1][KEYBOARD_MAPPING.deadman] == 1
    kb.press('up', 1.9)  # any key keeps it alive
    assert kb.state(3.8)[1][KEYBOARD_MAPPING.deadman] == 1
    assert kb.state(4.0)[1][KEYBOARD_MAPPING.deadman] == 0
    kb.press('space', 5.0)
    assert kb.press('space', 5.1) == 'deadman off'


def test_keyboard_jog_holds_then_stops():
    kb = KeyboardJoy(KeyboardConfig(jog_hold=0.5))
    assert kb.press('down', 0.0) == 'jog - (deadman off: press space)'
    assert kb.state(0.4)[0] == (-1.0,)
    assert kb.state(0.6)[0] == (0.0,)
    kb.press('up', 1.0)
    kb.press('s', 1.1)
    assert kb.state(1.2)[0] == (0.0,)


def test_keyboard_taps_are_seen_once_then_released():
    kb = KeyboardJoy(KeyboardConfig(tap=0.1))
    kb.press('space', 0.0)
    assert kb.press('enter', 0.0) == 'confirm'
    assert kb.state(1.0)[1][KEYBOARD_MAPPING.confirm] == 1  # late reader still sees it
    assert kb.state(1.01)[1][KEYBOARD_MAPPING.confirm] == 0
    assert kb.state(1.01)[1][KEYBOARD_MAPPING.deadman] == 0  # confirm lets go
    kb.press('3', 2.0)
    assert kb.state(2.0)[1][KEYBOARD_MAPPING.joint_buttons[2]] == 1
    assert kb.press('x', 3.0) == ''


def test_keyboard_drives_the_mapper_end_to_end():
    clock = Clock()
    kb = KeyboardJoy()
    m = TeleopMapper(KEYBOARD_MAPPING, LIMIT, clock=clock)

    def step(key=None):
        if key:
            kb.press(key, clock.t)
        out = m.update(*kb.state(clock.t), clock.t)
        clock.t += 0.05
        return out

    step('space')
    step('2')
    out = step('up')
    assert m.selected == 1 and out.velocity == pytest.approx([0.0, 0.03, 0.0])
    for _ in range(20):
        out = step()
    assert not out.velocity.any()  # the key was let go: the jog ran out
    assert step('e').events == (JoyEvent.ESTOP,)


# ---------------------------------------------------------------- on the twin

def joy(mapping, *pressed, stick=0.0):
    axes = [0.0] * 8
    axes[mapping.axis] = stick
    out = [0] * 11
    for b in pressed:
        out[b] = 1
    return {'axes': axes, 'buttons': out}


@pytest.fixture
def teleop():
    loop = TwinLoop(mapping=XBOX, reset_mode='teleop')
    loop.until(Phase.RESET, **joy(XBOX))
    return loop


def test_scripted_teleop_reset_through_the_shield(teleop):
    loop = teleop
    lift, elbow = loop.env.act_idx
    q0 = loop.read().position
    for _ in range(5):
        loop.tick(**joy(XBOX, XBOX.deadman))  # grip, stick centred
    for _ in range(125):  # 1 s full up on shoulder_lift
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    loop.tick(**joy(XBOX, XBOX.deadman))
    loop.tick(**joy(XBOX, XBOX.deadman, XBOX.next_joint))
    for _ in range(125):  # 1 s full down on the elbow
        loop.tick(**joy(XBOX, XBOX.deadman, stick=-1.0))
    loop.tick(**joy(XBOX, XBOX.confirm))
    loop.until(Phase.READY, max_ticks=20, **joy(XBOX))
    moved = loop.read().position - q0
    speed = np.minimum(XBOX.velocity_scale * loop.shield.velocity_limit,
                       loop.shield.acceleration_limit * loop.shield.period)
    # The twin's velocity servos track the jog a little slower (friction, damping).
    assert moved[lift] == pytest.approx(speed[lift] * 1.0, rel=0.2)
    assert moved[elbow] == pytest.approx(-speed[elbow] * 1.0, rel=0.2)
    others = np.delete(np.arange(len(moved)), [lift, elbow])
    assert np.abs(moved[others]).max() < 1e-3
    loop.assert_within_limits(loop.sent)
    assert np.abs(np.array(loop.sent)).max() == pytest.approx(speed[lift])
    assert loop.lc.resets[-1].mode == 'teleop'


@pytest.mark.parametrize('task', ['ur5_reacher_2d', 'dxl_reacher'])
def test_releasing_the_deadman_stops_the_arm_within_one_driver_period(task):
    loop = TwinLoop(task, mapping=XBOX, reset_mode='teleop')
    loop.until(Phase.RESET, **joy(XBOX))
    lift = loop.env.act_idx[0]
    loop.tick(**joy(XBOX, XBOX.deadman))
    for _ in range(50):
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    jog = loop.sent[-1][lift]
    assert jog > 0 and loop.read().velocity[lift] == pytest.approx(jog, rel=0.25)
    step = loop.shield.acceleration_limit[lift] * loop.shield.period
    assert jog <= step + 1e-12  # capped at what one period of braking removes
    loop.tick(**joy(XBOX, stick=1.0))  # deadman let go, stick still pushed
    assert not np.any(loop.sent[-1]), 'the command after the release must be zero'
    assert not loop.lc.last_interventions & Intervention.ACCEL_LIMIT
    for _ in range(3):
        loop.tick(**joy(XBOX, stick=1.0))
    assert not np.any(loop.sent[-4:])
    # The arm's own response follows: on the twin one period of command latency and the
    # velocity servo's lag bring the measured speed near rest (noise ~1e-3) in 4 periods.
    assert abs(loop.read().velocity[lift]) < 0.25 * jog
    loop.assert_within_limits(loop.sent)


def test_a_silent_gamepad_stops_the_jog(teleop):
    loop = teleop
    loop.tick(**joy(XBOX, XBOX.deadman))
    for _ in range(20):
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    assert np.any(loop.sent[-1])
    for _ in range(int(XBOX.timeout / loop.backend.period) + 5):
        loop.tick()  # no more Joy messages
    assert not np.any(loop.sent[-3:])
    assert loop.lc.status()['teleop'].startswith('no Joy message for')


def test_gamepad_estop_latches_and_blocks_teleop_until_released(teleop):
    loop = teleop
    loop.tick(**joy(XBOX, XBOX.deadman))
    for _ in range(30):
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    loop.tick(**joy(XBOX, XBOX.deadman, XBOX.estop, stick=1.0))
    assert loop.lc.phase is Phase.ESTOP and 'B (button 1)' in loop.lc.shield.estop_reason
    for _ in range(100):  # the operator keeps jogging, lets go, grips again
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
        loop.tick(**joy(XBOX))
        loop.tick(**joy(XBOX, XBOX.deadman))
    q = loop.read().position
    for _ in range(50):
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    assert not np.any(loop.sent[-250:])
    assert np.abs(loop.read().position - q).max() < 1e-3
    loop.tick(**joy(XBOX, XBOX.confirm))  # confirm cannot leave an e-stop either
    assert loop.lc.phase is Phase.ESTOP
    loop.lc.release_estop()
    loop.lc.request_reset()
    for _ in range(20):  # still gripping with the stick pushed: no jump after the release
        loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    assert not np.any(loop.sent[-20:])
    loop.tick(**joy(XBOX, XBOX.deadman))
    loop.tick(**joy(XBOX, XBOX.deadman, stick=1.0))
    assert np.any(loop.sent[-1])


def test_holding_confirm_confirms_once(teleop):
    loop = teleop
    for _ in range(50):
        loop.tick(**joy(XBOX, XBOX.confirm))
    assert loop.lc.phase is Phase.READY
    transitions = len(loop.lc.transitions)
    loop.lc.request_reset()
    for _ in range(50):  # still holding the same press: the new reset is not confirmed
        loop.tick(**joy(XBOX, XBOX.confirm))
    assert loop.lc.phase is Phase.RESET
    assert len(loop.lc.transitions) == transitions + 1


# ---------------------------------------------------------------- any input at all

AXIS = st.one_of(st.floats(-1.0, 1.0), st.sampled_from([math.nan, math.inf, 2.0, -1.04]))
READING = st.tuples(st.lists(AXIS, min_size=0, max_size=9),
                    st.lists(st.sampled_from([0, 1, 1, 2]), min_size=0, max_size=12),
                    st.sampled_from([0.0, 0.0, 0.0, -0.3, 0.7, math.nan]))


@settings(max_examples=200, deadline=None)
@given(st.lists(READING, min_size=1, max_size=30))
def test_mapper_never_moves_without_the_deadman_whatever_it_reads(readings):
    clock = Clock()
    m = TeleopMapper(XBOX, LIMIT, clock=clock)
    for axes, buttons, age in readings:
        out = m.update(axes, buttons, clock.t - age)
        held = len(buttons) > XBOX.deadman and buttons[XBOX.deadman] == 1
        assert np.all(np.isfinite(out.velocity))
        assert np.all(np.abs(out.velocity) <= XBOX.velocity_scale * LIMIT + 1e-15)
        if out.velocity.any():
            assert held and out.reason == ''
        clock.t += 0.01


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, -1.0, 0.5, math.nan]),
                          st.sets(st.sampled_from([XBOX.deadman, XBOX.confirm, XBOX.estop,
                                                   XBOX.next_joint, XBOX.prev_joint])),
                          st.integers(1, 30)),
                min_size=1, max_size=12))
def test_every_teleop_command_stays_within_the_shield_limits(script):
    loop = TwinLoop(mapping=XBOX, reset_mode='teleop')
    loop.until(Phase.RESET, **joy(XBOX))
    loop.sent.clear()
    for stick, pressed, ticks in script:
        for _ in range(ticks):
            loop.tick(**joy(XBOX, *pressed, stick=stick))
        if loop.lc.phase is Phase.READY:
            loop.lc.request_reset()
        if loop.lc.phase is Phase.ESTOP:
            loop.lc.release_estop()
            loop.lc.request_reset()
    loop.assert_within_limits(loop.sent)
