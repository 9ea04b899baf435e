"""docs/benchmarks.md and bench/ against each other, without running the benchmarks:
every bench script is in run_all, every quoted bench command parses with that bench's own
parser, every results file follows bench/record.py's schema. One cheap bench runs its
quick mode end to end and its line is checked."""
import importlib
import json
import os
from pathlib import Path
import re
import shlex
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record, run_all  # noqa: E402

BENCH = ROOT / 'bench'
DOCS = sorted((ROOT / 'docs').glob('*.md')) + [ROOT / 'README.md']
SCRIPT = re.compile(r'bench/(\w+)\.py')


def quoted_commands():
    """(file, bench, arguments) of every bench command the docs quote: lines of code blocks
    and inline code spans (a span may wrap onto the next line)."""
    found = []
    for doc in DOCS:
        blocks = re.split(r'^```.*$', doc.read_text(), flags=re.M)
        prose, code = '\n'.join(blocks[::2]), '\n'.join(blocks[1::2])
        spans = [m.group(1).replace('\n', ' ') for m in re.finditer(r'`([^`]+)`', prose)]
        lines = [line.lstrip('$ ') for line in code.splitlines()
                 if re.match(r'\s*(\$ )?python bench/', line)]
        for command in [c for c in spans + lines if SCRIPT.search(c)]:
            words = shlex.split(command, comments=True)
            for i, word in enumerate(words):
                match = SCRIPT.fullmatch(word)
                if match and match.group(1) != 'record':  # the module, not a command
                    found.append((doc.name, match.group(1), words[i + 1:]))
    return found


COMMANDS = quoted_commands()


def test_every_bench_script_is_in_run_all():
    scripts = {p.stem for p in BENCH.glob('*.py')} - set(run_all.HELPERS)
    assert scripts == set(run_all.BENCHES)
    others = {p.name for p in BENCH.iterdir() if p.is_file() and p.suffix != '.py'}
    assert others == set(run_all.NOT_RUN)


def test_the_docs_quote_commands_of_most_benches():
    """The scan itself finds what it should (a broken pattern would pass everything)."""
    named = {bench for _, bench, _ in COMMANDS}
    assert {'learning', 'update_speed', 'ros_timing', 'trust_kl', 'blob_auth'} <= named
    assert ('benchmarks.md', 'learning', ['--env', 'Pendulum-v1', '--preset', 'pendulum',
                                          '--seeds', '0', '1', '2', '--sb3']) in COMMANDS


@pytest.mark.parametrize('doc,bench,args', COMMANDS,
                         ids=[f'{d}:{b} {" ".join(a)}' for d, b, a in COMMANDS])
def test_quoted_command_parses_with_the_bench_parser(doc, bench, args):
    assert (BENCH / f'{bench}.py').is_file(), f'{doc} quotes bench/{bench}.py'
    parser = importlib.import_module(f'bench.{bench}').build_parser()
    try:
        parser.parse_args(args)
    except SystemExit as exit:
        pytest.fail(f'{doc}: bench/{bench}.py rejects {args} (exit {exit.code})')


@pytest.mark.parametrize('bench', run_all.BENCHES)
def test_quick_sizes_are_options_of_the_bench(bench):
    module = importlib.import_module(f'bench.{bench}')
    parser = module.build_parser()
    quick = record.parse(parser, module.QUICK, ['--quick'])
    dests = {action.dest for action in parser._actions}
    assert set(module.QUICK) <= dests
    assert all(getattr(quick, key) == value for key, value in module.QUICK.items())


@pytest.mark.parametrize('path', sorted((BENCH / 'results').iterdir()),
                         ids=lambda p: p.name)
def test_results_file_follows_the_schema(path):
    if path.suffix == '.png':  # a picture a bench draws beside its lines
        return
    assert path.suffix == '.jsonl' and path.stem in run_all.BENCHES, path.name
    lines = path.read_text().splitlines()
    assert lines, f'{path.name} is empty'
    for number, text in enumerate(lines, 1):
        assert record.problems(json.loads(text), path.stem) == [], f'{path.name}:{number}'


def test_an_option_given_with_quick_wins():
    parser = importlib.import_module('bench.update_speed').build_parser()
    assert record.parse(parser, {'pairs': 3}, ['--quick']).pairs == 3
    assert record.parse(parser, {'pairs': 3}, ['--quick', '--pairs', '5']).pairs == 5
    assert record.parse(parser, {'pairs': 3}, []).pairs == 30


def test_a_rerun_keeps_the_newest_runs_of_its_command(tmp_path):
    legacy = record.legacy('twin_speed', {'steps_per_s': 1.0})
    (tmp_path / 'twin_speed.jsonl').write_text(json.dumps(legacy) + '\n')
    other = record.Run('twin_speed', False, ['--episodes', '5'], folder=tmp_path)
    other.write({'n': -1})
    for n in range(record.KEEP_RUNS + 2):
        run = record.Run('twin_speed', True, [], folder=tmp_path)
        run.date = f'2030-01-01T00:00:{n:02d}+00:00'
        lines = run.write({'n': n}, {'n': n, 'second': True})
    quick = [line['figures']['n'] for line in lines if line['command'].endswith('.py')]
    assert quick == [n for n in range(2, record.KEEP_RUNS + 2) for _ in range(2)]
    assert lines[0] == legacy
    assert [line['figures'] for line in lines if 'episodes' in line['command']] == [{'n': -1}]
    assert all(record.problems(line, 'twin_speed') == [] for line in lines)


def test_shield_cost_quick_writes_its_line(tmp_path):
    """The cheapest bench end to end, as run_all starts it, into a results folder of its
    own; only the line's form is checked (never the times)."""
    env = dict(os.environ, TRPO_BENCH_RESULTS=str(tmp_path))
    done = subprocess.run([sys.executable, 'bench/shield_cost.py', '--quick', '--calls', '300'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = record.read(tmp_path / 'shield_cost.jsonl')
    assert [record.problems(line, 'shield_cost') for line in lines] == [[]] * 6
    first = lines[0]
    assert first['command'] == 'python bench/shield_cost.py --quick --calls 300'
    assert first['mode'] == 'quick'
    assert {line['date'] for line in lines} == {first['date']}
    assert {'hostname', 'cpus', 'cpu_model', 'loadavg', 'python', 'commit',
            'packages'} <= set(first['machine'])
    assert 'numpy' in first['machine']['packages']
    assert [(line['figures']['robot'], line['figures']['workspace']) for line in lines] == [
        (robot, box) for robot in ('ur5', 'dxl') for box in ('task box', 'no box', '5 cm box')]
    assert all(line['figures']['calls'] == 300 for line in lines)


def test_robot_time_counts_every_acted_step_up_to_the_competent_window():
    """bench/robot_time.py: partial episodes cost robot time but never enter the window;
    competence needs a full window of 40 at 80% within 2 cm, and not one episode before."""
    from bench.robot_time import competence, curve
    near, far = (100, 0.01, True), (100, 0.03, True)
    cut = (37, 0.001, False)
    episodes = [far] * 10 + [cut] + [near] * 31 + [far] * 1 + [near] * 1
    assert competence(episodes[:-1]) is None  # 31 of the last 40 full ones: 77.5%
    robot_s, n = competence(episodes)  # 32 of 40: 80%
    assert n == len(episodes) and robot_s == pytest.approx((43 * 100 + 37) * 0.04)
    assert competence([near] * 39) is None and competence([(100, -1.0, True)] * 40) is None
    assert curve([cut, near]) == [pytest.approx((137 * 0.04 / 60, 0.01))]
