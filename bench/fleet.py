"""Several arms, one learner: lab time to the task's success criterion with 1, 2 and 4 twins.

A lab with N arms lives driver time, not the sum of its arms' time: N twins act at once and
feed one learner. Each run is `trpo-robot learn --arms N` as shipped (config/learner.yaml,
which stops at the task's success criterion), every N at the same real-time factor and step
budget, same seeds. The episodes of all arms fall in one order by the driver time they
ended (``end_stamp``, each twin's clock starting at its start); the lab time is the end of
the episode that completes the task's window (80% of the last 40 full episodes within the
task's distance, 5 cm on the UR5), resets and start-up included. Also per run: arm time
(every arm's acted steps to that point, x 40 ms), the learner's median update time, the
episodes' median transport time (publication to receipt, progress.csv) and each arm's
control overruns (its timing.json).

    python bench/fleet.py --arms 4 2 1 --seeds 0 1 2 --rtf 0.5
    python bench/fleet.py --quick     # 2 arms at 1x, a 2,000-step budget: the bench runs

Writes bench/results/fleet.jsonl, one line per run.
"""
import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from bench.robot_time import _wait_unless_held, _wall_limit, competence  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 150_000
"""SenseAct's UR-Reacher-2 budget, for the whole fleet (the learner's steps)."""


def run_fleet(task, arms, seed, rtf, steps, out):
    cmd = [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--task', task,
           '--arms', str(arms), '--rtf', str(rtf), '--seed', str(seed), '--steps', str(steps),
           '--out', str(out)]
    log_path = out.parent / f'{out.name}.log'
    t0 = time.monotonic()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        held = _wait_unless_held(proc, log_path, _wall_limit(steps, rtf * arms))
    if proc.returncode and not held:
        raise RuntimeError(f'trpo-robot learn failed ({proc.returncode}): {log_path}')
    return time.monotonic() - t0, held, log_path.read_text()


def fleet_episodes(out, task):
    """(end stamp, steps, final distance, full, arm) of every recorded episode, in the
    order they ended in driver time."""
    from trpo_robot.robot.tasks import get_task
    from trpo_robot.ros.params import task_dims
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import wire
    dims = task_dims(get_task(task))
    store = EpisodeStore(Path(out) / 'episodes')
    rows = []
    for arm, _, path in store.episodes():
        episode = wire.read_episode(store.read(path), *dims)
        extra = episode.extra
        full = not episode.aborted and not extra.get('partial', False)
        rows.append((float(extra['end_stamp']), len(episode.rewards),
                     float(extra.get('final_distance', -1.0)), full, arm))
    return sorted(rows)


def lab_time(episodes, bar):
    """(driver s, arm s, episodes) at the episode that completes the window, or None:
    robot_time's competence over the fleet's episodes in the order they ended."""
    reached = competence([row[1:4] for row in episodes], bar=bar)
    return (episodes[reached[1] - 1][0], *reached) if reached else None


def progress_medians(out):
    from trpo_robot.plots import read_progress
    rows = read_progress(Path(out) / 'progress.csv')

    def median(key):
        values = [r[key] for r in rows if isinstance(r.get(key), float) and r[key] == r[key]]
        return statistics.median(values) if values else None
    return median('update_s'), median('episode_latency_ms'), len(rows)


def overruns(out):
    """{arm: (overruns, ticks)} from the timing.json each actor wrote at shutdown."""
    found = {}
    logs = Path(out) / 'logs'
    for path in sorted(logs.glob('timing.json')) + sorted(logs.glob('*/timing.json')):
        record_ = json.loads(path.read_text())
        arm = path.parent.name if path.parent != logs else 'arm'
        found[arm] = (record_['overruns'], record_['ticks'])
    return found


def one_run(task, arms, seed, args):
    from trpo_robot.robot.tasks import get_task
    out = args.runs / f'fleet_{task}_arms{arms}_seed{seed}'
    wall, held, log = run_fleet(task, arms, seed, args.rtf, args.steps, out)
    episodes = fleet_episodes(out, task)
    reached = lab_time(episodes, get_task(task).success_distance)
    update_s, latency_ms, updates = progress_medians(out)
    return {'task': task, 'arms': arms, 'seed': seed, 'rtf': args.rtf, 'budget': args.steps,
            'lab_s': reached[0] if reached else None,
            'arm_s': reached[1] if reached else None,
            'episodes': reached[2] if reached else None,
            'recorded_episodes': len(episodes), 'updates': updates,
            'update_s_median': update_s, 'episode_latency_ms_median': latency_ms,
            'overruns': overruns(out), 'wall_s': wall, 'held': held,
            'released_holds': log.count('the actor resets it')}


def _fmt(seconds):
    return 'not reached' if seconds is None else f'{seconds / 60:.1f}'


def _median(values):
    """None unless every run reached the criterion."""
    return statistics.median(values) if values and None not in values else None


def report(results, arms_list):
    print('\narms | lab min to success per seed (median) | arm min | update s | latency ms | '
          'overruns')
    medians = {arms: _median([r['lab_s'] for r in results if r['arms'] == arms])
               for arms in arms_list}
    base = medians.get(min(arms_list))  # the fewest arms: the ratios are against it
    for arms in sorted(arms_list):
        rows = [r for r in results if r['arms'] == arms]
        labs, median = [r['lab_s'] for r in rows], medians[arms]
        ratio = f' = {median / base:.2f}x' if median and base else ''
        print(f'{arms} | {", ".join(_fmt(x) for x in labs)} ({_fmt(median)}{ratio}) | '
              f'{", ".join(_fmt(r["arm_s"]) for r in rows)} | '
              f'{", ".join(str(r["update_s_median"]) for r in rows)} | '
              f'{", ".join(str(r["episode_latency_ms_median"]) for r in rows)} | '
              f'{", ".join(str(r["overruns"]) for r in rows)}')


QUICK = {'arms': [2], 'seeds': [0], 'steps': 2000, 'rtf': 1.0}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--task', default='ur5_reacher_2d')
    ap.add_argument('--arms', type=int, nargs='+', default=[1, 2, 4])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--rtf', type=float, default=1.0,
                    help='every N at this real-time factor (1: what 2 cores carry for 4 UR5 '
                         'twins, docs/ros.md)')
    ap.add_argument('--steps', type=int, default=BUDGET, help='the fleet\'s step budget')
    ap.add_argument('--runs', type=Path, default=ROOT / 'runs' / 'bench')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('fleet', args.quick, argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for arms in args.arms:
            row = one_run(args.task, arms, seed, args)
            rows.append(row)
            print(json.dumps(row), flush=True)
            results.write(row)
    report(rows, args.arms)
    return 0


if __name__ == '__main__':
    sys.exit(main())
