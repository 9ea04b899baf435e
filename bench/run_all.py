"""Every benchmark's --quick mode, one after another, then a summary (`make bench`).

One at a time because most of them time something: a bench beside another measures the
other. Each runs as its own process (`python bench/<name>.py --quick`, from the repository
root), its output kept in runs/bench_logs/<name>.log; it passes when it exits 0 and has
written its results line(s) to bench/results/<name>.jsonl (bench/record.py). Exits 1 when
any failed.

    python bench/run_all.py [--only NAME ...] [--list] [--timeout S]
"""
import argparse
import ast
from datetime import datetime, timezone
import os
from pathlib import Path
import subprocess
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOGS = ROOT / 'runs' / 'bench_logs'
BENCHES = (
    # in-process, seconds each
    'shield_cost', 'twin_speed', 'episode_store', 'blob_auth', 'reset_time', 'rate_timing',
    'trust_kl', 'learning', 'update_speed', 'twin_learning', 'dxl_bus',
    # the ROS graph as processes, tens of seconds to minutes each
    'ros_transport', 'ros_swap', 'ros_timing', 'ros_reset_time', 'guard_stop',
    'dxl_graph', 'ros_async_vs_sync', 'chaos', 'robot_time', 'start_time', 'fleet',
)
NOT_RUN = {
    'suite_soak.sh': 'a soak of the test suite (`make test` on N fresh clones under a CPU '
                     'hog), not a benchmark: run it by hand',
}
"""Scripts in bench/ that run_all leaves out, and why."""
HELPERS = ('__init__', 'record', 'run_all')
"""Modules of bench/ that are not benchmarks."""


def summary_line(name):
    """The first line of a bench's docstring, read without importing it (most import
    rclpy or torch)."""
    doc = ast.get_docstring(ast.parse((HERE / f'{name}.py').read_text()))
    return (doc or '').splitlines()[0] if doc else ''


def new_lines(name, since):
    """Lines of the bench's quick runs that started at or after `since` (whole seconds)."""
    lines = record.read(record.FOLDER / f'{name}.jsonl')
    return [line for line in lines if line.get('mode') == 'quick'
            and line.get('date') not in (None, record.UNKNOWN)
            and datetime.fromisoformat(line['date']) >= since]


def run_one(name, timeout):
    """(status, seconds, lines written, log path) of one bench's quick mode."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f'{name}.log'
    since = datetime.now(timezone.utc).replace(microsecond=0)
    t0 = time.monotonic()
    with open(log, 'w') as out:
        try:
            code = subprocess.run([sys.executable, str(HERE / f'{name}.py'), '--quick'],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.monotonic() - t0
    written = len(new_lines(name, since))
    if code is None:
        status = f'FAILED: timeout after {timeout:g} s'
    elif code != 0:
        status = f'FAILED: exit {code}'
    elif not written:
        status = 'FAILED: no results line'
    else:
        status = 'ok'
    return status, seconds, written, log


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', nargs='+', metavar='NAME', choices=BENCHES,
                   help='run these benches only (in the usual order)')
    p.add_argument('--list', action='store_true', help='list the benches and exit')
    p.add_argument('--timeout', type=float, default=900.0, help='per bench, s')
    return p


def print_list():
    for name in BENCHES:
        print(f'{name:18s} {summary_line(name)}')
    for name, why in NOT_RUN.items():
        print(f'{name:18s} not run: {why}')


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        print_list()
        return 0
    names = [n for n in BENCHES if not args.only or n in args.only]
    load0, t0 = os.getloadavg(), time.monotonic()
    print(f'{len(names)} benches, quick mode, one at a time; load average '
          f'{load0[0]:.2f} on {os.cpu_count()} cpus', flush=True)
    rows = []
    for i, name in enumerate(names, 1):
        print(f'[{i}/{len(names)}] {name} ... ', end='', flush=True)
        status, seconds, written, log = run_one(name, args.timeout)
        rows.append((name, status, seconds, written))
        print(f'{status} in {seconds:.1f} s (elapsed {time.monotonic() - t0:.0f} s)',
              flush=True)
        if status != 'ok':
            tail = log.read_text(errors='replace').splitlines()[-15:]
            print('\n'.join(f'    | {line}' for line in tail) + f'\n    (log: {log})',
                  flush=True)
    print_summary(rows, time.monotonic() - t0, load0)
    return 0 if all(status == 'ok' for _, status, _, _ in rows) else 1


def print_summary(rows, total, load0):
    print('\n| bench | status | seconds | results lines |\n|---|---|---|---|')
    for name, status, seconds, written in rows:
        print(f'| {name} | {status} | {seconds:.1f} | {written} |')
    failed = sum(status != 'ok' for _, status, _, _ in rows)
    load1 = os.getloadavg()
    print(f'\n{len(rows) - failed}/{len(rows)} passed in {total:.0f} s; load average '
          f'{load0[0]:.2f} at the start, {load1[0]:.2f} at the end '
          f'({os.cpu_count()} cpus); results in bench/results/, logs in {LOGS}')


if __name__ == '__main__':
    sys.exit(main())
