"""Asynchronous against synchronous TRPO on ur5_reacher_2d, both on the whole ROS graph.

Asynchronous: `trpo-robot learn` (twin, actor and learner processes; the arm keeps acting
while the learner updates). Synchronous: the same graph with `--synchronous`: after each
learner batch the actor holds the arm at rest until the next version arrives, as SenseAct
ran TRPO. Same processes, same resets, same transport, same seed and the same number of
steps (the success-rate stop is switched off, so the budget is the run): the only
difference is whether the arm waits for learning. Each final policy is evaluated
deterministically on the in-process twin (mean final distance over 50 fixed episodes);
the training curve's final distance (episodes of the last 12k steps) is the second measure.
Wall-clock time of robot use is compared from the first update to the last (the same
learned steps, without the graph's start-up). One seed is one sample of a noisy learning
outcome, so the comparison is over several seeds: the mean final distance of each mode and
their ratio, with a bootstrap interval over the seeds. Each seed's result and curves are
written to bench/results/ros_async_vs_sync.jsonl as soon as both of its runs are done, the
summary over the seeds last; curves (final distance of training episodes against
wall-clock) are drawn in bench/results/async_vs_sync.png.

    python bench/ros_async_vs_sync.py --steps 120000 --seeds 0 1 2 3 4
    python bench/ros_async_vs_sync.py --quick   # one batch per mode, seed 0, at 2x, in
                                                # runs/bench_quick; no picture

--reuse keeps finished runs of an earlier invocation (runs/bench_{async,sync}_seedN) and
runs only what is missing.
"""
import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / 'bench' / 'results' / 'async_vs_sync.png'
TASK = 'ur5_reacher_2d'
EVAL_EPISODES, EVAL_SEED = 50, 70_000
TAIL_STEPS = 12_000
"""Training-curve final distance: the mean over the updates of the last ~10% of the steps
(about 120 episodes, acted with exploration noise)."""
MODES = ('async', 'sync')


def evaluate(agent):
    from trpo_robot.twin.envs import make_twin_env
    env = make_twin_env(TASK)
    agent.obs_norm.frozen = True
    dists = []
    for k in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(np.clip(agent.act_deterministic(obs), -1, 1))
            done = term or trunc
        dists.append(info['distance'])
    return float(np.mean(dists))


def run_graph(steps, rtf, seed, out, synchronous):
    """`trpo-robot learn` for exactly ``steps`` (a copy of config/ur5.yaml whose success
    window can never fill turns the early stop off), asynchronous or --synchronous."""
    import yaml
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / 'config' / 'ur5.yaml').read_text())
    config['/**']['ros__parameters']['success_window'] = 10 ** 9
    config_file = out.parent / f'{out.name}_ur5.yaml'
    config_file.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--task',
           'reacher_2d', '--steps', str(steps), '--rtf', str(rtf), '--seed', str(seed),
           '--out', str(out), '--config', str(config_file)]
    subprocess.run(cmd + (['--synchronous'] if synchronous else []), check=True,
                   stdout=subprocess.DEVNULL)


def progress(out):
    from trpo_robot.ros.learn import read_progress
    return read_progress(Path(out) / 'progress.csv')


def stored_seconds(out, keys=('reset_seconds', 'held_seconds')):
    """Robot time summed over the recorded episodes' extra[key] for each key, the
    start-up's first episode left out; the store is read once."""
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import wire
    store = EpisodeStore(Path(out) / 'episodes')
    extras = [wire.decode_episode(store.read(path), 12, 2)[1]['extra']
              for _, _, path in store.episodes()]
    return {key: float(sum(e.get(key, 0.0) for e in extras[1:])) for key in keys}


QUICK = {'steps': 2100, 'seeds': [0], 'rtf': 2.0, 'runs': ROOT / 'runs' / 'bench_quick'}
"""One learner batch (21 UR5 episodes) per mode, away from the runs --reuse keeps; at 2x,
where a loaded machine still keeps the graph's deadlines."""


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=120_000)
    ap.add_argument('--rtf', type=float, default=8.0)
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--reuse', action='store_true',
                    help='keep finished bench_{async,sync}_seedN runs; run the rest')
    ap.add_argument('--runs', type=Path, default=ROOT / 'runs',
                    help='folder of the runs (default runs/)')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('ros_async_vs_sync', args.quick, argv)
    if args.quick and not args.reuse:  # a finished quick run would otherwise be resumed
        shutil.rmtree(args.runs, ignore_errors=True)
    runs = []
    for seed in args.seeds:
        runs.append(compare(args, seed))
        print(json.dumps(runs[-1]['result']), flush=True)
        results.write(runs[-1])
    summary = summarize([r['result'] for r in runs])
    print(json.dumps(summary))
    results.write(summary)
    plot(runs, args, Path(tempfile.gettempdir()) / 'async_vs_sync_quick.png' if args.quick
         else PLOT)


def compare(args, seed):
    """One seed: the graph asynchronous, then the same graph synchronous, as many steps
    from the same seed; both final policies evaluated the same way."""
    from trpo_robot.trpo import checkpoint
    result, curves = {'task': TASK, 'rtf': args.rtf, 'seed': seed}, {}
    for mode in MODES:
        out = args.runs / f'bench_{mode}_seed{seed}'
        if not (args.reuse and (out / 'checkpoint' / 'meta.json').is_file()):
            run_graph(args.steps, args.rtf, seed, out, synchronous=mode == 'sync')
        agent, _ = checkpoint.load(out / 'checkpoint')
        rows = progress(out)
        stored = stored_seconds(out)
        curves[mode] = [(r['wall_s'], r['steps'], r['final_distance']) for r in rows]
        result[mode] = {'steps': agent.total_steps, 'wall_s': rows[-1]['wall_s'],
                        'span_s': rows[-1]['wall_s'] - rows[0]['wall_s'],
                        'update_s': float(sum(r['update_s'] for r in rows)),
                        'reset_robot_s': stored['reset_seconds'],
                        'held_robot_s': stored['held_seconds'],
                        'eval_final_distance': evaluate(agent),
                        'train_final_distance': float(np.mean(
                            [r['final_distance'] for r in rows
                             if r['steps'] > rows[-1]['steps'] - TAIL_STEPS]))}
    return {'result': result, 'async_curve': curves['async'], 'sync_curve': curves['sync']}


def summarize(results):
    """Means over the seeds, the distance ratio async/sync (of the means, per seed, and a
    bootstrap interval) and the saving in wall-clock time of robot use (span: first update
    to last)."""
    def values(mode, key):
        return np.array([r[mode][key] for r in results])
    a_dist, s_dist = values('async', 'eval_final_distance'), values('sync',
                                                                    'eval_final_distance')
    a_train, s_train = values('async', 'train_final_distance'), values(
        'sync', 'train_final_distance')
    a_span, s_span = values('async', 'span_s'), values('sync', 'span_s')
    return {'summary': True, 'seeds': [r['seed'] for r in results],
            'steps': [r['async']['steps'] for r in results],
            'async_mean_final_distance': float(a_dist.mean()),
            'sync_mean_final_distance': float(s_dist.mean()),
            'distance_ratio': float(a_dist.mean() / s_dist.mean()),
            'distance_ratio_per_seed': [float(x) for x in a_dist / s_dist],
            'distance_ratio_95ci': bootstrap_ratio(a_dist, s_dist),
            'async_mean_train_final_distance': float(a_train.mean()),
            'sync_mean_train_final_distance': float(s_train.mean()),
            'train_distance_ratio': float(a_train.mean() / s_train.mean()),
            'train_distance_ratio_per_seed': [float(x) for x in a_train / s_train],
            'train_distance_ratio_95ci': bootstrap_ratio(a_train, s_train),
            'async_mean_span_s': float(a_span.mean()),
            'sync_mean_span_s': float(s_span.mean()),
            'wall_saving': float(1.0 - a_span.mean() / s_span.mean()),
            'wall_saving_per_seed': [float(x) for x in 1.0 - a_span / s_span],
            'sync_mean_held_robot_s': float(values('sync', 'held_robot_s').mean()),
            'sync_mean_update_s': float(values('sync', 'update_s').mean())}


def bootstrap_ratio(a, b, draws=10_000):
    """95% interval of mean(a) / mean(b), the seeds (pairs: one seed, both modes)
    resampled with replacement."""
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(a), (draws, len(a)))
    ratios = a[pick].mean(1) / b[pick].mean(1)
    return [float(x) for x in np.percentile(ratios, [2.5, 97.5])]


def plot(runs, args, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(runs):
        for key, label, color in (('async_curve', 'asynchronous', 'tab:blue'),
                                  ('sync_curve', 'synchronous (arm waits for updates)',
                                   'tab:orange')):
            curve = run[key]
            ax.plot([c[0] / 60 for c in curve], [c[2] for c in curve], color=color,
                    alpha=0.8, lw=1, label=f'{label}' if i == 0 else None,
                    linestyle=('-', '--', ':', '-.')[i % 4])
    ax.set_xlabel('wall-clock time of robot use, min')
    ax.set_ylabel('final distance of training episodes, m')
    ax.set_yscale('log')
    ax.set_title(f'{TASK}, twin at {args.rtf:g}x real time, seeds {args.seeds}')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == '__main__':
    main()
