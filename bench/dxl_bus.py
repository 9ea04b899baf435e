"""Dynamixel bus timing through the emulator: what loop rate the real code path holds.

For 3 and 6 servos: the cycle time of one sync write (Goal Velocity) plus one sync read
(present current, velocity, position) back to back (median, p99); the highest rate that a
RateLoop holds for a few seconds with zero overruns; and, with the backend on the
three-servo arm, the time from a host stall to the servo standing still (Bus Watchdog at
100 ms). The emulator models wire time at the given baud rate and each servo's Return
Delay Time (set to 0, as bring-up does); ``--adapter-latency-ms`` adds the USB adapter's
latency timer to every reply (1 ms is a tuned FTDI adapter; 0 is the bare pty). The
emulator runs under SCHED_FIFO where permitted (a servo is its own processor); the host
loop runs once with normal scheduling and once under SCHED_FIFO.

    python bench/dxl_bus.py [--seconds 3] [--baud 1000000] [--adapter-latency-ms 0 1]
                            [--target-seconds 10] [--no-realtime] [--quick]

Writes bench/results/dxl_bus.jsonl (one line: the whole report) and prints markdown tables.
"""
import argparse
import json
from pathlib import Path
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.hw.backend import DynamixelBackend  # noqa: E402
from trpo_robot.hw.bus import Bus, ServoFault  # noqa: E402
from trpo_robot.hw.config import load_config  # noqa: E402
from trpo_robot.hw.control_table import FAST_READ, REG  # noqa: E402
from trpo_robot.dxl_emulator import Emulator  # noqa: E402
from trpo_robot.robot.rate import RateLoop  # noqa: E402

RATES = (100, 200, 250, 333, 500, 1000)
REPLY_LATENCY_MS = 16.0
"""Reply timeout basis (dynamixel-sdk's default, 34 ms): on a shared 2-core machine the
emulated servo itself can be descheduled for over 10 ms; timeouts are counted either way."""
EMULATOR_PRIORITY = 60
"""SCHED_FIFO priority of the emulator (where permitted), above the host loop's 50: the
servos are their own processors on a real bus, so neither the host nor the machine's
other load may starve them here."""


def cycle(bus, ids, goal):
    bus.sync_write(REG['goal_velocity'], goal)
    bus.sync_read(*FAST_READ, ids)


def free_run(bus, ids, seconds):
    goal = {i: 0 for i in ids}
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        cycle(bus, ids, goal)
        times.append(time.perf_counter() - t0)
    return np.array(times)


def hold(bus, ids, rate, seconds, realtime):
    """Overruns and lateness of cycles on a RateLoop at ``rate`` Hz."""
    loop = RateLoop(1.0 / rate, realtime=realtime)
    goal = {i: 0 for i in ids}
    try:
        for _ in range(int(seconds * rate)):
            loop.wait()
            cycle(bus, ids, goal)
    finally:
        loop.release_realtime()
    stats = loop.stats()
    return stats.overruns, stats.ticks, stats.p99


def bus_timing(n, baud, latency_ms, seconds, link, realtime):
    ids = tuple(range(1, n + 1))
    faults = [f'latency-ms={latency_ms}'] if latency_ms else []
    with Emulator(link, ids=ids, baud=baud, faults=faults, priority=EMULATOR_PRIORITY):
        bus = Bus(str(link), baud, latency_timer_ms=REPLY_LATENCY_MS, retries=2)
        bus.open()
        try:
            for i in ids:
                bus.write(i, REG['return_delay_time'], 0)
            times = free_run(bus, ids, seconds)
            holds = {'normal': _holds(bus, ids, seconds, False)}
            if realtime:
                holds['fifo'] = _holds(bus, ids, seconds, True)
            errors = {'retries': bus.stats.retries, 'timeouts': bus.stats.timeouts}
        finally:
            bus.close()
    best = {mode: _highest_clean(by_rate) for mode, by_rate in holds.items()}
    return {'servos': n, 'baud': baud, 'adapter_latency_ms': latency_ms,
            'cycle_median_ms': 1e3 * float(np.median(times)),
            'cycle_p99_ms': 1e3 * float(np.percentile(times, 99)),
            'cycles_per_s': float(1.0 / np.median(times)),
            'max_rate_zero_overruns': best, 'holds': holds, **errors}


def _highest_clean(by_rate):
    """The highest rate that, with every lower rate, ran without an overrun."""
    best = 0
    for rate in RATES:
        if rate not in by_rate or by_rate[rate]['overruns'] != 0:
            break
        best = rate
    return best


def target_hold(baud, link, seconds, realtime):
    """The issue's target: 6 servos at 100 Hz behind a 1 ms adapter, for longer."""
    ids = tuple(range(1, 7))
    with Emulator(link, ids=ids, baud=baud, faults=['latency-ms=1'],
                  priority=EMULATOR_PRIORITY):
        bus = Bus(str(link), baud, latency_timer_ms=REPLY_LATENCY_MS, retries=2)
        bus.open()
        try:
            for i in ids:
                bus.write(i, REG['return_delay_time'], 0)
            overruns, ticks, late = hold(bus, ids, 100, seconds, realtime)
        finally:
            bus.close()
    return {'realtime': realtime, 'overruns': overruns, 'ticks': ticks,
            'lateness_p99_ms': 1e3 * late, 'retries': bus.stats.retries}


def _holds(bus, ids, seconds, realtime):
    """Each rate in turn until one is far past the limit (higher ones only fail harder)."""
    out = {}
    for rate in RATES:
        try:
            overruns, ticks, late = hold(bus, ids, rate, seconds, realtime)
        except ServoFault as e:  # the emulator fell behind: this rate does not hold
            out[rate] = {'overruns': None, 'fault': str(e)}
            bus.drain()
            break
        out[rate] = {'overruns': overruns, 'ticks': ticks, 'lateness_p99': late}
        if overruns > ticks // 20:
            break
    return out


def stall_to_stop(baud, link, trials=5):
    """s from the last packet of a stalled host to the servo at rest, per trial."""
    out = []
    with Emulator(link, baud=baud, priority=EMULATOR_PRIORITY) as emulator:
        config = load_config(port=str(link), baud=baud, latency_timer_ms=REPLY_LATENCY_MS)
        backend = DynamixelBackend(config)
        try:
            for _ in range(trials):
                backend.send_velocity([1.0, 0.0, 0.0])
                backend.advance(0.2)
                time.sleep(0.4)  # the host hangs
                servo = emulator.stats()['servos']['1']
                out.append(servo['stopped_at'] - servo['last_instruction'])
                backend.send_velocity([-1.0, 0.0, 0.0])  # re-arms the watchdog, comes back
                backend.advance(0.2)
                backend.stop()
                backend.advance(0.1)
            rearms = backend.stats()['watchdog_rearms']
        finally:
            backend.close()
    return {'watchdog_ms': config.watchdog_ms, 'stall_to_stop_ms': [1e3 * s for s in out],
            'rearms': rearms}


def backend_hold(baud, link, seconds):
    """The backend itself on the 3-servo arm at 100 Hz, health reads included."""
    with Emulator(link, baud=baud, priority=EMULATOR_PRIORITY):
        backend = DynamixelBackend(load_config(port=str(link), baud=baud,
                                               latency_timer_ms=REPLY_LATENCY_MS))
        fault = None
        try:
            backend.send_velocity([0.2, 0.0, 0.0])
            backend.advance(seconds)
        except ServoFault as e:
            fault = str(e)
        finally:
            stats = backend.stats()
            backend.close()
    return {'fault': fault, **{k: stats[k] for k in (
        'cycles', 'overruns', 'health_reads', 'retries', 'timeouts', 'lateness_p99',
        'lateness_max')}}


QUICK = {'seconds': 0.5, 'adapter_latency_ms': [1.0], 'target_seconds': 1.0}


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seconds', type=float, default=3.0)
    p.add_argument('--baud', type=int, default=1_000_000)
    p.add_argument('--adapter-latency-ms', type=float, nargs='+', default=[0.0, 1.0])
    p.add_argument('--target-seconds', type=float, default=10.0,
                   help='length of the 6-servo 100 Hz hold')
    p.add_argument('--no-realtime', action='store_true',
                   help='skip the SCHED_FIFO runs of the rate holds')
    return record.add_quick(p)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('dxl_bus', args.quick, argv)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / 'ttyDXL'
        rows = [bus_timing(n, args.baud, lat, args.seconds, link, not args.no_realtime)
                for lat in args.adapter_latency_ms for n in (3, 6)]
        stall = stall_to_stop(args.baud, link)
        held = backend_hold(args.baud, link, 2 * args.seconds)
        target = [target_hold(args.baud, link, args.target_seconds, realtime)
                  for realtime in ((False,) if args.no_realtime else (False, True))]
    report = {'baud': args.baud, 'python': sys.version.split()[0], 'bus': rows,
              'stall': stall, 'backend_100hz': held, 'target_6_servos_100hz': target}
    results.write(report)
    print_tables(report)


def print_tables(report):
    print('| servos | adapter latency | sync write + sync read median (ms) | p99 (ms) | '
          'cycles/s | highest rate with 0 overruns: normal / SCHED_FIFO |')
    print('|---|---|---|---|---|---|')
    for r in report['bus']:
        best = r['max_rate_zero_overruns']
        print(f'| {r["servos"]} | {r["adapter_latency_ms"]:g} ms | {r["cycle_median_ms"]:.2f} '
              f'| {r["cycle_p99_ms"]:.2f} | {r["cycles_per_s"]:.0f} | '
              f'{best["normal"]} Hz / {best.get("fifo", "-")} Hz |')
    print(f'\noverruns per rate ({", ".join(map(str, RATES))} Hz; "x" = not tried, past '
          'the limit):')
    for r in report['bus']:
        for mode, by_rate in r['holds'].items():
            counts = [by_rate.get(str(rate), by_rate.get(rate)) for rate in RATES]
            text = ' / '.join('x' if c is None else 'fault' if c['overruns'] is None
                              else f'{c["overruns"]}/{c["ticks"]}' for c in counts)
            print(f'- {r["servos"]} servos, {r["adapter_latency_ms"]:g} ms, {mode}: {text}')
    s = report['stall']
    ms = s['stall_to_stop_ms']
    print(f'\nstall to stop (watchdog {s["watchdog_ms"]:.0f} ms, {len(ms)} trials): median '
          f'{np.median(ms):.1f} ms, max {max(ms):.1f} ms; re-arms {s["rearms"]}')
    print(f'backend at 100 Hz: {json.dumps(report["backend_100hz"])}')
    for t in report['target_6_servos_100hz']:
        mode = 'SCHED_FIFO' if t['realtime'] else 'normal'
        print(f'6 servos at 100 Hz, 1 ms adapter, {mode}: {t["overruns"]} overruns in '
              f'{t["ticks"]} cycles, lateness p99 {t["lateness_p99_ms"]:.2f} ms, '
              f'retries {t["retries"]}')


if __name__ == '__main__':
    main()
