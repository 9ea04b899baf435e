"""Robot time to competence: how many minutes of arm motion each learner needs.

On a real arm the scarce thing is robot time, so this bench counts it, not wall clock or
updates. Learners, same tasks and seeds:

    ours      `trpo-robot learn` as shipped (config/learner.yaml) on the whole graph: twin,
              guard, actor and asynchronous learner processes, the twin at --rtf
    senseact  the same graph with SenseAct's TRPO configuration (the `senseact` preset:
              batch 2048, max KL 0.05, gamma = lambda = 0.995, 32-32 networks)
    sb3       sb3-contrib TRPO with its defaults, in one process on the twin env (no
              graph: no policy lag and no reset cost, which favours it)

Competence: 80% of the last 40 full episodes ended within 2 cm of the target (the tasks'
own success criteria, 5 cm for the UR5 and 2 cm for the Dynamixel at the same 80% over 40,
then hold too). Robot time is the agent steps acted up to and including the episode that
completes that window, times the task's 40 ms; the robot time spent in resets is reported
apart, from the resets the graph recorded (sb3's in-process resets teleport the twin for
free). Every acted step counts: episodes the learner later dropped as stale or aborted
used the arm all the same. The graph's learner stops at the same bar
(`success_distance: 0.02`), so a run ends at competence or at its step budget.

    python bench/robot_time.py --tasks ur5_reacher_2d --seeds 0 1 2
    python bench/robot_time.py --quick    # one short run of each learner; no picture

Writes bench/results/robot_time.jsonl (one line per run, with its curve) and, for a full
run, docs/img/robot_time_<task>.png (final distance against robot minutes).
"""
import argparse
import json
from pathlib import Path
import shutil
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LEARNERS = ('ours', 'senseact', 'sb3')
COMPETENT_DISTANCE, WINDOW, RATE = 0.02, 40, 0.8
AGENT_DT = 0.04
"""The agent step of every task here (SenseAct's 40 ms)."""
BUDGET = {'ur5_reacher_2d': 150_000, 'ur5_reacher_6d': 300_000, 'dxl_reacher': 100_000}
"""Step budgets: SenseAct's 150k for UR-Reacher-2, twice that for six joints, twice
SenseAct's ~50k for DXL-Reacher. A run that is not competent by then reports None."""
ROBOT = {'ur5_reacher_2d': 'ur5', 'ur5_reacher_6d': 'ur5', 'dxl_reacher': 'dxl'}


def competence(episodes, agent_dt=AGENT_DT, bar=COMPETENT_DISTANCE):
    """(robot seconds, episodes) up to the episode that completes the competence window,
    or None. episodes: (steps, final distance, full) in the order the arm acted them;
    partial (cut or aborted) episodes cost robot time but do not enter the window. bar:
    the distance an episode must end within (the task's own, for its success criterion)."""
    window, acted = [], 0
    for n, (steps, distance, full) in enumerate(episodes, 1):
        acted += steps
        if not full:
            continue
        window = (window + [0.0 <= distance < bar])[-WINDOW:]
        if len(window) == WINDOW and np.mean(window) >= RATE:
            return acted * agent_dt, n
    return None


def curve(episodes, agent_dt=AGENT_DT):
    """(robot minutes at each full episode's end, its final distance)."""
    out, acted = [], 0
    for steps, distance, full in episodes:
        acted += steps
        if full and distance >= 0:
            out.append((acted * agent_dt / 60, distance))
    return out


# ------------------------------------------------------------------ the graph (ours, senseact)

def learner_config(learner, out, variant):
    """config/learner.yaml with the competence bar; senseact swaps the preset and drops
    our overrides of it, and ours takes --preset/--overrides when given."""
    import yaml
    config = yaml.safe_load((ROOT / 'config' / 'learner.yaml').read_text())
    params = config['/**']['ros__parameters']
    params['success_distance'] = COMPETENT_DISTANCE
    if learner == 'senseact':
        params['preset'], params['trpo'] = 'senseact', {}
    elif variant.preset:
        params['preset'], params['trpo'] = variant.preset, json.loads(variant.overrides)
    path = out.parent / f'{out.name}_learner.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def run_graph(learner, task, seed, steps, out, args):
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', ROBOT[task],
           '--task', task, '--steps', str(steps), '--rtf', str(args.rtf), '--seed', str(seed),
           '--out', str(out), '--learner-config', str(learner_config(learner, out, args))]
    log_path = out.parent / f'{out.name}.log'
    t0 = time.monotonic()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        held = _wait_unless_held(proc, log_path, _wall_limit(steps, args.rtf))
    if proc.returncode and not held:
        raise RuntimeError(f'trpo-robot learn failed ({proc.returncode}): {log_path}')
    return time.monotonic() - t0, held


def _wait_unless_held(proc, log_path, limit):
    """Wait for the run's end; a run whose arm stays held (the actor resets a held twin
    three times a run, then leaves it to an operator) is stopped and its HOLD line
    returned: it would wait for good."""
    t0 = time.monotonic()
    while proc.poll() is None:
        held = [line for line in log_path.read_text().splitlines()
                if 'ARM HELD' in line and 'Learning waits for the operator' in line]
        if held or time.monotonic() - t0 > limit:
            proc.send_signal(signal.SIGINT)  # the CLI stops its nodes and saves the run
            proc.wait(timeout=120)
            return held[0] if held else f'no end after {limit:.0f} s'
        time.sleep(2)
    return ''


def _wall_limit(steps, rtf):
    """Three times the budget's robot time at the twin's speed, and ten minutes of start-up
    and slack: a run that is slower than that is stuck, not learning."""
    return 3 * steps * AGENT_DT / rtf + 600


def stored_episodes(out, task):
    """(steps, final distance, full, reset robot s) of every recorded episode, in the
    order the actor acted them (one actor: its sequence order)."""
    from trpo_robot.robot.tasks import get_task
    from trpo_robot.ros.params import task_dims
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import wire
    dims = task_dims(get_task(task))
    rows = []
    store = EpisodeStore(Path(out) / 'episodes')
    for _, _, path in store.episodes():
        episode = wire.read_episode(store.read(path), *dims)
        extra = episode.extra
        full = not episode.aborted and not extra.get('partial', False)
        rows.append((len(episode.rewards), float(extra.get('final_distance', -1.0)), full,
                     float(extra.get('reset_seconds', 0.0))))
    return rows


def update_seconds(out):
    from trpo_robot.ros.learn import read_progress
    rows = read_progress(Path(out) / 'progress.csv')
    return statistics.median(r['update_s'] for r in rows) if rows else None


def graph_result(learner, task, seed, args):
    out = args.runs / f'robot_time_{task}_{learner}_seed{seed}'
    wall, held = run_graph(learner, task, seed, args.steps or BUDGET[task], out, args)
    rows = stored_episodes(out, task)
    episodes = [r[:3] for r in rows]
    reached = competence(episodes)
    resets = [r[3] for r in rows[1:]]  # the first reset is the start-up's
    if reached:
        resets = resets[:reached[1] - 1]
    return {'wall_s': wall, 'acted_steps': sum(r[0] for r in rows),
            'reset_robot_s': float(sum(resets)), 'update_s_median': update_seconds(out),
            'in_process': False, 'held': held,
            'released_holds': _log(out).count('the actor resets it'),
            **summary(reached, episodes, task)}


def _log(out):
    return (out.parent / f'{out.name}.log').read_text()


def summary(reached, episodes, task):
    """The competence figures, and when the task's own success criterion first held."""
    from trpo_robot.robot.tasks import get_task
    own = competence(episodes, bar=get_task(task).success_distance)
    return {'robot_s': reached[0] if reached else None,
            'episodes': reached[1] if reached else None,
            'task_criterion_robot_s': own[0] if own else None, 'curve': curve(episodes)}


# ------------------------------------------------------------------ in process

class Competent(Exception):
    """Raised from the env's step at the episode that completes the window: both learners'
    training loops end there, wherever they are in a batch."""


def recording(env, episodes):
    import gymnasium as gym

    class Record(gym.Wrapper):
        def reset(self, **kwargs):
            self.steps = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, term, trunc, info = self.env.step(action)
            self.steps += 1
            if term or trunc:
                episodes.append((self.steps, float(info['distance']), True))
                if competence(episodes):
                    raise Competent
            return obs, reward, term, trunc, info
    return Record(env)


def ours_config(learner, variant):
    """The TRPOConfig the graph's learner would run: config/learner.yaml's preset and
    overrides for ours (or --preset and --overrides), the senseact preset for SenseAct's
    configuration."""
    import yaml
    from trpo_robot.trpo.config import preset
    if learner == 'senseact':
        return preset('senseact')
    if variant.preset:
        return preset(variant.preset).with_overrides(**json.loads(variant.overrides))
    params = yaml.safe_load((ROOT / 'config' / 'learner.yaml').read_text())['/**'][
        'ros__parameters']
    return preset(params['preset']).with_overrides(**params.get('trpo', {}))


def train_in_process(learner, env, seed, steps, variant, update_times=None):
    import torch
    torch.set_num_threads(1)
    if learner == 'sb3':
        from sb3_contrib import TRPO
        TRPO('MlpPolicy', env, seed=seed, device='cpu', verbose=0).learn(steps)
        return
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.trainer import train
    agent = Agent(env.observation_space.shape[0], env.action_space.shape[0],
                  ours_config(learner, variant), seed)
    on_update = (lambda stats, returns: update_times.append(stats.update_time)) \
        if update_times is not None else None
    train(env, agent, steps, seed, printer=lambda line: None, on_update=on_update)


def worker(learner, task, seed, steps, variant):
    """One learner on the in-process twin (fast mode, teleported resets) until competence
    or the budget; prints its episodes as one JSON line."""
    from trpo_robot.twin.envs import make_twin_env
    episodes, update_times = [], []
    t0 = time.monotonic()
    try:
        train_in_process(learner, recording(make_twin_env(task, seed=seed), episodes), seed,
                         steps, variant, update_times)
    except Competent:
        pass
    print(json.dumps({'wall_s': time.monotonic() - t0, 'episodes_list': episodes,
                      'update_times': update_times}))


def in_process_result(learner, task, seed, args):
    cmd = [sys.executable, __file__, '--worker', learner, '--tasks', task, '--seeds',
           str(seed), '--steps', str(args.steps or BUDGET[task]), '--overrides', args.overrides]
    cmd += ['--preset', args.preset] if args.preset else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    worker = json.loads(out.strip().splitlines()[-1])
    episodes = [tuple(e) for e in worker['episodes_list']]
    reached = competence(episodes)
    return {'wall_s': worker['wall_s'], 'acted_steps': sum(e[0] for e in episodes),
            'reset_robot_s': None, 'in_process': True, 'held': '',
            'update_s_median': (statistics.median(worker['update_times'])
                                if worker['update_times'] else None),
            **summary(reached, episodes, task)}


# ------------------------------------------------------------------ report

def report(results, tasks, learners):
    print('\n| task | learner | robot minutes to competence, per seed | median | the task\'s '
          'own criterion, robot min (median) | resets, robot s (median) | acted steps '
          '(median) | update s (median) |')
    print('|---|---|---|---|---|---|---|---|')
    for task in tasks:
        for learner in learners:
            rs = [r for r in results if r['task'] == task and r['learner'] == learner]
            if rs:
                own = [dict(r, robot_s=r.get('task_criterion_robot_s')) for r in rs]
                print(f'| {task} | {learner} | {_per_seed(rs)} | {_median_minutes(rs)} | '
                      f'{_median_minutes(own)} | {_median(rs, "reset_robot_s")} | '
                      f'{_median(rs, "acted_steps")} | {_median(rs, "update_s_median", 2)} |')


def _minutes(r):
    return float('inf') if r['robot_s'] is None else r['robot_s'] / 60


def _per_seed(rs):
    return ', '.join(f'{_minutes(r):.1f}' if r['robot_s'] is not None else
                     f'held at {r["acted_steps"]} steps' if r.get('held') else 'not reached'
                     for r in rs)


def _median_minutes(rs):
    m = statistics.median(_minutes(r) for r in rs)
    return 'not reached' if m == float('inf') else f'**{m:.1f}**'


def _median(rs, key, digits=1):
    values = [r[key] for r in rs if r.get(key) is not None]
    return f'{statistics.median(values):.{digits}f}' if values else '-'


def plot(results, task, path, where='the graph'):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colors = dict(zip(LEARNERS, ('tab:blue', 'tab:green', 'tab:orange')))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for r in (r for r in results if r['task'] == task):
        if len(r['curve']) < 10:
            continue
        minutes, dist = np.array(r['curve']).T
        smooth = np.convolve(dist, np.ones(10) / 10, mode='valid')
        first = r['seed'] == min(x['seed'] for x in results if x['learner'] == r['learner'])
        ax.plot(minutes[9:], 100 * smooth, color=colors[r['learner']], alpha=0.8,
                label=r['learner'] if first else None)
        if r['robot_s'] is not None:
            ax.axvline(r['robot_s'] / 60, color=colors[r['learner']], ls=':', lw=1)
    ax.axhline(100 * COMPETENT_DISTANCE, color='gray', ls='--', lw=1, label='2 cm')
    ax.set(yscale='log', xlabel='robot minutes (agent steps x 40 ms, resets apart)',
           ylabel='final distance, cm (10 episodes)',
           title=f'{task}, {where}: robot time to competence (dotted: competent)')
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def recorded_graph_runs(task, seeds, path=ROOT / 'bench' / 'results' / 'robot_time.jsonl'):
    """The newest full graph run of each (learner, seed) on record (one line a run), with
    its date and commit: one learner's seeds come from one commit only if run so."""
    newest = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        r = run['figures']
        if run['mode'] == 'full' and r['task'] == task and not r['in_process'] \
                and r['seed'] in seeds and not r.get('preset'):
            newest[r['learner'], r['seed']] = {
                **r, 'date': run['date'][:10], 'commit': run['machine']['commit'][:7]}
    return [newest[k] for k in sorted(newest)]


def plot_recorded(tasks, seeds):
    for task in tasks:
        runs = recorded_graph_runs(task, seeds)
        for r in runs:
            print(f"{task} {r['learner']} seed {r['seed']}: {r['date']} at {r['commit']}, "
                  f'robot min {_minutes(r):.1f}')
        rates = sorted({f"{r['rtf']:g}x" for r in runs})
        plot(runs, task, ROOT / 'docs' / 'img' / f'robot_time_{task}.png',
             f"the graph at {', '.join(rates)}")


QUICK = {'steps': 2100, 'seeds': [0], 'tasks': ['ur5_reacher_2d'], 'rtf': 2.0,
         'runs': ROOT / 'runs' / 'bench_quick'}
"""One learner batch of each learner, at 2x where a loaded machine keeps the deadlines."""


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--tasks', nargs='+', choices=sorted(BUDGET), default=['ur5_reacher_2d'])
    ap.add_argument('--learners', nargs='+', choices=LEARNERS, default=list(LEARNERS))
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--steps', type=int, default=None,
                    help='step budget of every run (default: per task, BUDGET)')
    ap.add_argument('--rtf', type=float, default=None,
                    help="the twin's real-time factor for the graph's runs (default: "
                         "trpo-robot learn's for this host and robot)")
    ap.add_argument('--runs', type=Path, default=ROOT / 'runs',
                    help='folder of the graph runs (default runs/)')
    ap.add_argument('--in-process', action='store_true',
                    help='ours and senseact too in one process on the twin env, as sb3 '
                         '(no graph: minutes, not hours; no policy lag, no reset cost)')
    ap.add_argument('--preset', default='',
                    help="ours: this TRPO preset instead of config/learner.yaml's")
    ap.add_argument('--overrides', default='{}',
                    help='ours, with --preset: TRPOConfig fields as JSON, e.g. '
                         '\'{"max_kl": 0.05}\'')
    ap.add_argument('--plot-recorded', action='store_true',
                    help="draw docs/img/robot_time_<task>.png from the newest graph run of "
                         "each learner and seed in bench/results/robot_time.jsonl (the "
                         "graph's learners are hours apart: they are run one at a time)")
    ap.add_argument('--worker', choices=LEARNERS, help=argparse.SUPPRESS)
    return record.add_quick(ap)


def host_rtf(task):
    """The rate `trpo-robot learn` picks on this host for the task's robot."""
    from trpo_robot.ros import params as P
    from trpo_robot.ros.learn import default_rtf
    values = P.node_parameters([ROOT / 'config' / f'{ROBOT[task]}.yaml'], 'twin_node')
    return default_rtf(values.get('driver_period', P.RobotParams.driver_period))


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    if args.plot_recorded:
        return plot_recorded(args.tasks, args.seeds)
    if args.worker:
        return worker(args.worker, args.tasks[0], args.seeds[0], args.steps, args)
    run = record.Run('robot_time', args.quick, argv)
    results = []
    every_task = args
    for task in args.tasks:
        args = argparse.Namespace(**{**vars(every_task), 'rtf': every_task.rtf or host_rtf(task)})
        for seed in args.seeds:
            for learner in args.learners:
                result = {'task': task, 'learner': learner, 'seed': seed, 'rtf': args.rtf,
                          'preset': args.preset, 'overrides': json.loads(args.overrides),
                          **(in_process_result(learner, task, seed, args)
                             if learner == 'sb3' or args.in_process
                             else graph_result(learner, task, seed, args))}
                run.write(result)
                results.append(result)
                print(f'{task} {learner} seed {seed}: robot s {result["robot_s"]}, '
                      f'wall {result["wall_s"]:.0f} s', flush=True)
        # the pictures show the shipped learners side by side: a run of some of them, or
        # of another preset, leaves the picture of the full run alone
        if not (args.quick or args.preset) and set(args.learners) == set(LEARNERS):
            suffix = '_in_process' if args.in_process else ''
            plot(results, task, ROOT / 'docs' / 'img' / f'robot_time_{task}{suffix}.png',
                 'in process' if args.in_process else f'the graph at {args.rtf:g}x')
    report(results, args.tasks, args.learners)


if __name__ == '__main__':
    main()
