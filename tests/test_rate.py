"""RateLoop with an injected clock: absolute deadlines, overrun handling, statistics."""
import os

import numpy as np
import pytest

from trpo_robot.robot.rate import LatenessHistogram, RateLoop, TimingStats


class FakeTime:
    """A clock that moves only when slept on or read (each read costs ``read_cost``).

    ``oversleep`` draws the extra time a sleep takes, like an OS that wakes late.
    """

    def __init__(self, oversleep=lambda: 0.0, read_cost=1e-6):
        self.t = 1000.0
        self.oversleep = oversleep
        self.read_cost = read_cost
        self.sleeps = []

    def clock(self):
        self.t += self.read_cost
        return self.t

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.t += seconds + self.oversleep()

    def work(self, seconds):
        self.t += seconds


def loop_with(fake, period=0.002, **kwargs):
    return RateLoop(period, clock=fake.clock, sleep=fake.sleep, realtime=False, **kwargs)


def test_deadlines_are_absolute_under_jitter():
    rng = np.random.default_rng(0)
    fake = FakeTime(oversleep=lambda: rng.uniform(0.0, 0.00015))
    loop = loop_with(fake, period=0.002, spin=0.0002)
    loop.start()
    t0 = fake.t
    deadlines = []
    for _ in range(1000):
        fake.work(rng.uniform(0.0, 0.0015))
        deadlines.append(loop.wait())
    np.testing.assert_allclose(np.diff(deadlines), 0.002, rtol=0, atol=1e-9)
    assert deadlines[-1] == pytest.approx(t0 + 1000 * 0.002, abs=1e-9)
    assert fake.t - deadlines[-1] < 1e-5  # the spin absorbed the oversleep: no drift
    stats = loop.stats()
    assert stats.ticks == 1000 and stats.overruns == 0
    assert stats.max < 1e-5


def test_sleep_stops_short_by_spin():
    fake = FakeTime()
    loop = loop_with(fake, period=0.01, spin=0.001)
    loop.start()
    loop.wait()
    assert fake.sleeps[0] == pytest.approx(0.009, abs=1e-5)


def test_late_sleep_is_recorded_as_lateness():
    fake = FakeTime(oversleep=lambda: 0.0005)
    loop = loop_with(fake, period=0.002, spin=0.0002)
    for _ in range(10):
        loop.wait()
    stats = loop.stats()
    assert stats.overruns == 0
    assert stats.p50 == pytest.approx(0.0003, abs=1e-5)


def test_overrun_is_counted_and_skipped_without_burst():
    fake = FakeTime()
    loop = loop_with(fake, period=0.002, spin=0.0002)
    loop.start()
    t0 = fake.t
    first = loop.wait()
    fake.work(0.0051)  # the step took more than two and a half periods
    late = loop.wait()
    following = loop.wait()
    assert loop.stats().overruns == 1
    assert late == pytest.approx(t0 + 4 * 0.002, abs=1e-9)  # missed the 2nd and 3rd
    assert following - late == pytest.approx(0.002, abs=1e-9)  # no back-to-back tick
    assert first == pytest.approx(t0 + 0.002, abs=1e-9)


def test_stats_percentiles_match_recorded_lateness():
    lateness = iter(np.linspace(0.0, 0.001, 200))
    fake = FakeTime(read_cost=0.0)
    loop = loop_with(fake, period=0.01, spin=0.0)

    def sleep(seconds):
        fake.t += seconds + next(lateness)
    loop._sleep = sleep
    for _ in range(200):
        loop.wait()
    expected = np.linspace(0.0, 0.001, 200)
    stats = loop.stats()
    assert isinstance(stats, TimingStats)
    assert stats.ticks == 200
    assert stats.p50 == pytest.approx(np.percentile(expected, 50), abs=1e-9)
    assert stats.p99 == pytest.approx(np.percentile(expected, 99), abs=1e-9)
    assert stats.max == pytest.approx(0.001, abs=1e-9)
    loop.reset_stats()
    assert loop.stats() == TimingStats(0, 0, 0.0, 0.0, 0.0)


def test_ring_keeps_only_recent_ticks():
    fake = FakeTime(read_cost=0.0)
    extra = iter([0.005] * 5 + [0.0] * 20)
    loop = loop_with(fake, period=0.01, spin=0.0, history=10)
    loop._sleep = lambda s: setattr(fake, 't', fake.t + s + next(extra))
    for _ in range(25):
        loop.wait()
    stats = loop.stats()
    assert stats.ticks == 25
    assert stats.p99 == 0.0  # the early late ticks have left the ring
    assert stats.max == pytest.approx(0.005)  # but the all-time max remembers them


def test_restart_re_anchors_without_an_overrun():
    fake = FakeTime()
    loop = loop_with(fake, period=0.002)
    loop.wait()
    fake.work(1.0)  # a pause between episodes
    loop.start()
    loop.wait()
    assert loop.stats().overruns == 0


def test_realtime_falls_back_with_a_warning(monkeypatch):
    def refuse(*args):
        raise PermissionError(1, 'Operation not permitted')
    monkeypatch.setattr(os, 'sched_setscheduler', refuse)
    fake = FakeTime()
    loop = RateLoop(0.002, clock=fake.clock, sleep=fake.sleep, realtime=True)
    with pytest.warns(RuntimeWarning, match='SCHED_FIFO'):
        loop.wait()
    assert not loop.realtime_active
    loop.wait()  # asks only once


def test_realtime_requests_fifo_for_the_calling_thread(monkeypatch):
    calls = []
    monkeypatch.setattr(os, 'sched_setscheduler',
                        lambda pid, policy, param: calls.append((pid, policy, param)))
    monkeypatch.setattr(os, 'sched_getscheduler', lambda pid: os.SCHED_OTHER)
    monkeypatch.setattr(os, 'sched_getparam', lambda pid: os.sched_param(0))
    fake = FakeTime()
    loop = RateLoop(0.002, clock=fake.clock, sleep=fake.sleep, realtime=True, priority=50)
    loop.wait()
    assert loop.realtime_active
    pid, policy, param = calls[0]
    assert (pid, policy, param.sched_priority) == (0, os.SCHED_FIFO, 50)
    loop.release_realtime()
    assert calls[-1][1] == os.SCHED_OTHER and not loop.realtime_active


@pytest.mark.parametrize('kwargs', [{'period': 0.0}, {'period': float('nan')},
                                    {'period': 0.001, 'spin': 0.002},
                                    {'period': 0.001, 'history': 0}])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        RateLoop(realtime=False, **kwargs)


# ---------------------------------------------------------------- lateness histogram

def test_histogram_bins_are_log_spaced_from_10_us_to_1_s():
    h = LatenessHistogram()
    edges = h.edges()
    assert len(edges) == h.bins + 1 == 51
    assert edges[0] == pytest.approx(1e-5) and edges[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log10(edges)), 0.1)


@pytest.mark.parametrize('lateness,where', [
    (-1e-3, 'underflow'), (0.0, 'underflow'), (9.9e-6, 'underflow'),
    (1.5e-5, 1), (3e-4, 14), (0.0099, 29), (0.0101, 30), (0.999, 49),
    (1.0, 'overflow'), (30.0, 'overflow')])
def test_each_lateness_lands_in_the_bin_whose_edges_hold_it(lateness, where):
    h = LatenessHistogram()
    h.add(lateness)
    d = h.to_dict()
    if isinstance(where, int):
        assert d['counts'][where] == 1 and sum(d['counts']) == 1
        assert d['edges_s'][where] <= lateness < d['edges_s'][where + 1]
    else:
        assert d[where] == 1 and sum(d['counts']) == 0
    assert d['total'] == 1


def test_histogram_counts_every_tick_and_forgets_them_on_reset():
    h = LatenessHistogram()
    samples = np.random.default_rng(0).lognormal(np.log(3e-4), 1.5, 5000)
    for x in samples:
        h.add(float(x))
    d = h.to_dict()
    assert d['total'] == d['underflow'] + sum(d['counts']) + d['overflow'] == 5000
    expected, _ = np.histogram(samples, bins=d['edges_s'])
    assert d['counts'] == expected.tolist()
    assert d['overflow'] == int((samples >= 1.0).sum())
    h.reset()
    assert h.total == 0


def test_histogram_refuses_bins_that_cannot_exist():
    with pytest.raises(ValueError):
        LatenessHistogram(low=1.0, high=1e-5)
    with pytest.raises(ValueError):
        LatenessHistogram(per_decade=0)
