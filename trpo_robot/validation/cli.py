"""`trpo-robot validate`: may this checkpoint drive the arm its config describes?

Exit 0 when every mark passes, 1 when one fails, 2 for a usage error. Either way the
figures go to ``validation.json`` beside the checkpoint (the record the hardware actor
checks) and the report pages to ``validation/`` beside it.
"""
import datetime
import functools
import platform
import sys
import time
from pathlib import Path

from trpo_robot.errors import UsageError
from trpo_robot.twin import conditions as twin_conditions

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def add_parser(sub):
    p = sub.add_parser('validate', help='play a checkpoint on the twin, nominal and under '
                       'randomization, latency and noise, plus a shield fuzz; pass/fail '
                       'against config/validation.yaml and a record the hardware actor checks')
    p.add_argument('--checkpoint', required=True, help='checkpoint folder (or run folder)')
    p.add_argument('--config', help='robot parameter file the arm will run with (default: '
                   "config/<robot>.yaml of the checkpoint's task)")
    p.add_argument('--thresholds', help='pass marks (default: config/validation.yaml)')
    p.add_argument('--episodes', type=int, default=25,
                   help='episodes per condition (4 conditions; default 25)')
    p.add_argument('--seeds', type=int, nargs='+', default=list(DEFAULT_SEEDS),
                   help='twin seeds: each its own draw of the randomized model')
    p.add_argument('--fuzz-steps', type=int, default=600,
                   help='agent steps of hostile actions into the shield (default 600)')
    p.add_argument('--latency-periods', type=int, default=2,
                   help='the latency condition: driver periods added to the config\'s '
                   'latency (default 2; set what the real cell measures, or more)')
    twin_conditions.add_arguments(p)
    p.add_argument('--actions', choices=('sample', 'mean'), default='sample',
                   help='sample: as the actor acts while it learns (default); mean: the '
                   'deterministic policy, as `eval` scores it')
    p.add_argument('--no-pictures', action='store_true',
                   help='skip the report pages (no OpenGL, or in a hurry)')
    p.set_defaults(func=cmd_validate)


def cmd_validate(args):
    from trpo_robot.cli import check_seed
    if args.episodes < 1 or args.fuzz_steps < 0 or args.latency_periods < 0:
        raise UsageError('--episodes must be >= 1, --fuzz-steps and --latency-periods >= 0')
    for seed in args.seeds:
        check_seed(seed)
    started = time.perf_counter()
    job = _prepare(args)
    job.expected = _configured(job, args)
    job.thresholds = _thresholds(args, job)  # a bad marks file fails before any episode
    print(f'validating {job.folder} (policy version {job.agent.version}, '
          f'{job.agent.total_steps} steps) for {job.rp.robot} / {job.task.name} with '
          f'{job.config}', flush=True)
    return _run(args, job, started)


class _Job:
    """What validate resolved from its arguments, before anything runs."""

    def __init__(self, folder, agent, meta, config, rp, task, settings):
        self.folder, self.agent, self.meta = folder, agent, meta
        self.config, self.rp, self.task, self.settings = config, rp, task, settings
        self.expected = None
        """The twin conditions the arm is expected to meet (config and flags)."""
        self.thresholds = None
        """(marks file, its marks for this task)."""


def _prepare(args):
    from trpo_robot.cli import _load_checkpoint
    from trpo_robot.envs import ARM_ENVS
    from trpo_robot.paths import checkpoint_folder, share_file
    from trpo_robot.ros import params as P
    from trpo_robot.twin.settings import load_settings

    folder = checkpoint_folder(args.checkpoint)
    agent, meta = _load_checkpoint(folder)
    env_id = meta.get('extra', {}).get('env_id', '')
    task_name = ARM_ENVS.get(env_id)
    if task_name is None:
        raise UsageError(f'{folder} was trained on {env_id or "an unnamed env"}; validate '
                         f'plays arm tasks of this project ({", ".join(ARM_ENVS)})')
    family = P.get_task(task_name).robot
    config = Path(args.config) if args.config else share_file('config', f'{family}.yaml')
    try:
        rp = P.build(P.RobotParams, P.node_parameters([config], 'actor_node'))
        resolved = P.resolve_task(rp.robot, rp.task)
    except P.ParamError as e:
        raise UsageError(f'--config {config}: {e}') from None
    if resolved != task_name:
        raise UsageError(f'--config {config} runs task {resolved}; the checkpoint was '
                         f'trained on {task_name}')
    settings = load_settings(rp.robot)
    if abs(settings.period - rp.driver_period) > 1e-9:
        raise UsageError(f'--config {config}: driver_period {rp.driver_period} s, but the '
                         f'twin of {rp.robot} runs {settings.period} s')
    return _Job(folder, agent, meta, config, rp, rp.task_spec(), settings)


def _thresholds(args, job):
    from trpo_robot.paths import share_file
    from trpo_robot.validation import report
    path = Path(args.thresholds) if args.thresholds else share_file('config', 'validation.yaml')
    return path, report.load_marks(path, job.task.name)


def _run(args, job, started):
    from trpo_robot.twin.envs import make_twin_env
    from trpo_robot.validation import record as R
    from trpo_robot.validation import report, runner

    policy = runner.policy_from_agent(job.agent)
    make_env = functools.partial(make_twin_env, job.task, robot=job.rp.robot)
    episodes, figures = {}, {}
    for condition in runner.conditions(job.settings, job.expected,
                                       extra_latency_periods=args.latency_periods):
        print(f'{condition.name}: {condition.description}', flush=True)
        episodes[condition.name] = runner.run_condition(
            make_env, condition, policy, args.seeds, args.episodes, _progress,
            sample=args.actions == 'sample')
        figures[condition.name] = runner.summarize(episodes[condition.name])
    fuzz = _fuzz(make_env, args)
    thresholds, marks = job.thresholds
    checks = report.judge(figures, fuzz, marks)
    passed = all(c.ok for c in checks)
    print('\n' + report.figures_table(figures) + '\n\n' + report.table(checks))
    pages = [] if args.no_pictures else _pictures(job, checks, episodes)
    path = R.write_record(job.folder, _record(args, job, policy, figures, fuzz, checks,
                                              thresholds, passed, started, pages))
    wall = time.perf_counter() - started
    print(f'\n{"PASSED" if passed else "FAILED"}: record {path}; '
          f'{"report " + ", ".join(map(str, pages)) if pages else "no report pages"}; '
          f'{wall:.1f} s', flush=True)
    return 0 if passed else 1


def _configured(job, args):
    """The conditions the arm is expected to meet (the config's twin_* keys, overridden by
    --randomize / --latency / --noise), which the harder conditions widen."""
    from trpo_robot.ros import params as P
    base = job.rp.twin_conditions()
    if args.randomize and base.randomization is None:
        base = P.twin_conditions_from_file(job.config, randomize=True)
    return twin_conditions.from_arguments(args, base)


def _progress(name, done, total, figures):
    if done == total or done % 10 == 0:
        print(f'  {name}: {done}/{total} episodes (last: return {figures.ret:.1f}, final '
              f'distance {figures.final_distance * 100:.1f} cm)', flush=True)


def _fuzz(make_env, args):
    from trpo_robot.validation import runner
    env = make_env(seed=args.seeds[0])
    try:
        fuzz = runner.shield_fuzz(env, args.fuzz_steps, args.seeds[0])
    finally:
        env.close()
    print(f'shield fuzz: {fuzz.steps} steps of {", ".join(runner.FUZZ_KINDS)}: '
          f'{fuzz.violations} violations, shield acted on {fuzz.interventions}', flush=True)
    return fuzz


def _pictures(job, checks, episodes):
    from trpo_robot.validation import report
    out = job.folder / 'validation'
    out.mkdir(exist_ok=True)
    title = f'{job.task.name}, policy version {job.agent.version}'
    return report.draw_pages(out, title, checks, episodes, _frames(job))


def _frames(job):
    """One episode drawn by the twin (rollout's frames), or None where OpenGL is missing."""
    from trpo_robot.rollout_cli import rollout_frames
    try:
        return rollout_frames(job.folder, episodes=1, seed=0, width=320, height=240)
    except Exception as e:  # noqa: BLE001 - a missing GL context must not fail validation
        print(f'no rollout pictures: {str(e).splitlines()[0]}', file=sys.stderr)
        return None


def _record(args, job, policy, figures, fuzz, checks, thresholds, passed, started, pages):
    from dataclasses import asdict
    from trpo_robot.validation import record as R
    return {
        'passed': passed,
        'failed': [f'{c.condition}:{c.mark}' for c in checks if not c.ok],
        'policy_sha256': R.policy_digest(policy.snapshot, policy.norm),
        'config_sha256': R.config_digest(job.rp),
        'weights_sha256': job.meta['weights_sha256'],
        'policy_version': job.agent.version, 'total_steps': job.agent.total_steps,
        'robot': job.rp.robot, 'task': job.task.name, 'config': str(job.config),
        'thresholds': str(thresholds), 'episodes_per_condition': args.episodes,
        'seeds': list(args.seeds), 'actions': args.actions,
        'expected_conditions': job.expected.as_dict(),
        'latency_periods': args.latency_periods,
        'figures': {k: R.finite_figures(v) for k, v in figures.items()},
        'fuzz': {**asdict(fuzz), 'violations': fuzz.violations},
        'checks': [R.finite_figures(asdict(c)) for c in checks],
        'report': [str(p) for p in pages], 'versions': _versions(),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'command': ' '.join(['trpo-robot', *sys.argv[1:]]) if sys.argv else '',
        'wall_s': round(time.perf_counter() - started, 2),
    }


def _versions():
    import mujoco
    import numpy
    import torch
    import trpo_robot
    return {'trpo_robot': trpo_robot.__version__, 'python': platform.python_version(),
            'numpy': numpy.__version__, 'torch': torch.__version__,
            'mujoco': mujoco.__version__}
