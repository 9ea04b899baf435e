"""The one writer of benchmark results: bench/results/<bench>.jsonl, one JSON object a line.

Every line says what produced its figures, so that a number in docs/benchmarks.md can be
traced to a command that reproduces it and to the machine and load it was measured under:

    schema   SCHEMA
    bench    the script's name (bench/<bench>.py)
    command  the command line that reproduces the run, `python bench/<bench>.py ARGS`
    date     UTC start of the run, ISO 8601 (one run may write several lines: same date)
    machine  hostname, cpus, cpu model, load average at the start, commit and the versions
             of the packages the figures depend on
    mode     'quick' (--quick: small sizes, a check that the bench runs) or 'full'
    figures  what the bench measured, as it always reported it

Lines migrated from before this schema carry 'unknown' where a field was never recorded
(command, date, machine, mode); their figures are the old lines unchanged.

Retention, so that reruns do not grow the files forever: writing a run keeps, for its
command, only the lines of the newest KEEP_RUNS runs (this one included). Lines of other
commands and migrated lines (command 'unknown', the record docs/benchmarks.md cites) are
never dropped by a rerun.
"""
import argparse
from datetime import datetime, timezone
import importlib.metadata
import json
import math
import os
from pathlib import Path
import platform
import shlex
import socket
import subprocess
import sys

SCHEMA = 1
KEEP_RUNS = 3
UNKNOWN = 'unknown'
MODES = ('quick', 'full')
ROOT = Path(__file__).resolve().parent.parent
FOLDER = Path(os.environ.get('TRPO_BENCH_RESULTS') or ROOT / 'bench' / 'results')
"""Where the results go; TRPO_BENCH_RESULTS moves them (the tests write elsewhere)."""
PACKAGES = ('torch', 'numpy', 'mujoco', 'gymnasium', 'sb3-contrib', 'stable-baselines3',
            'dynamixel-sdk', 'rclpy')
"""Distributions whose versions each line records when installed (read from metadata:
nothing is imported)."""
FIELDS = ('schema', 'bench', 'command', 'date', 'machine', 'mode', 'figures')


def add_quick(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument('--quick', action='store_true',
                        help='small sizes: seconds to a couple of minutes, same code path; '
                             'explicit options still win')
    return parser


def parse(parser, quick, argv=None):
    """Arguments with the quick sizes as defaults under --quick, so that an option given
    on the command line always wins over both."""
    args = parser.parse_args(argv)
    if args.quick:
        usual = {key: parser.get_default(key) for key in quick}
        parser.set_defaults(**quick)
        try:
            args = parser.parse_args(argv)
        finally:
            parser.set_defaults(**usual)
    return args


def command(bench, argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(['python', f'bench/{bench}.py', *argv])


def machine():
    return {'hostname': socket.gethostname(), 'cpus': os.cpu_count(),
            'cpu_model': _cpu_model(), 'loadavg': list(os.getloadavg()),
            'platform': platform.platform(), 'python': platform.python_version(),
            'commit': _commit(), 'packages': _versions()}


def _cpu_model():
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def _commit():
    """HEAD, with '+dirty' when the working tree differs from it (the figures may then
    come from code that no commit holds)."""
    try:
        head = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain',
                                '--untracked-files=no'], text=True, capture_output=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return (head + ('+dirty' if dirty else '')) if head else UNKNOWN


def _versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


class Run:
    """One invocation of a bench: its header is taken at the start (the load average
    before the bench loads the machine), its lines written as figures come in."""

    def __init__(self, bench, quick, argv=None, folder=None):
        self.bench = bench
        self.mode = 'quick' if quick else 'full'
        self.command = command(bench, argv)
        self.date = datetime.now(timezone.utc).isoformat(timespec='seconds')
        self.machine = machine()
        self.path = Path(folder or FOLDER) / f'{bench}.jsonl'

    def line(self, figures):
        return {'schema': SCHEMA, 'bench': self.bench, 'command': self.command,
                'date': self.date, 'machine': self.machine, 'mode': self.mode,
                'figures': figures}

    def write(self, *figures):
        """Append one line per figures dict and apply the retention rule."""
        keep = self._newest_dates()
        kept = [line for line in read(self.path) if line.get('command') != self.command
                or line.get('date') in keep]
        lines = kept + [self.line(f) for f in figures]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix('.jsonl.tmp')
        tmp.write_text(''.join(json.dumps(_strict(line), allow_nan=False) + '\n'
                               for line in lines))
        os.replace(tmp, self.path)
        return lines

    def _newest_dates(self):
        dates = {line.get('date') for line in read(self.path)
                 if line.get('command') == self.command}
        return set(sorted(dates - {self.date})[-(KEEP_RUNS - 1):]) | {self.date}


def _strict(line):
    """The line as strict JSON has it: a NaN or infinite figure (a mean over no updates)
    becomes null, which every JSON reader takes; Python's NaN token is not JSON."""
    def walk(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value
    return walk(json.loads(json.dumps(line, default=_plain)))


def _plain(value):
    """numpy scalars and arrays, and paths, as JSON has them."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


def read(path):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(text, parse_constant=_refuse) for text in path.read_text().splitlines()
            if text.strip()]


def _refuse(token):
    raise ValueError(f'{token} is not JSON (write figures through Run, which makes it null)')


def problems(line, bench=None):
    """What is wrong with one line against the schema ([] when nothing)."""
    found = [f'missing {k}' for k in FIELDS if k not in line]
    if found:
        return found
    if line['schema'] != SCHEMA:
        found.append(f'schema {line["schema"]!r}')
    if bench is not None and line['bench'] != bench:
        found.append(f'bench {line["bench"]!r} in the file of {bench!r}')
    if line['command'] != UNKNOWN and not line['command'].startswith(
            f'python bench/{line["bench"]}.py'):
        found.append(f'command {line["command"]!r}')
    if line['date'] != UNKNOWN:
        try:
            datetime.fromisoformat(line['date'])
        except (TypeError, ValueError):
            found.append(f'date {line["date"]!r}')
    if line['machine'] != UNKNOWN and not isinstance(line['machine'], dict):
        found.append('machine is neither a dict nor unknown')
    if line['mode'] not in MODES + (UNKNOWN,):
        found.append(f'mode {line["mode"]!r}')
    if not isinstance(line['figures'], dict):
        found.append('figures is not a dict')
    return found


def legacy(bench, figures):
    """A line of the old, bare format in this schema: its figures as they were, what it
    never recorded marked unknown."""
    return {'schema': SCHEMA, 'bench': bench, 'command': UNKNOWN, 'date': UNKNOWN,
            'machine': UNKNOWN, 'mode': UNKNOWN, 'figures': figures}
