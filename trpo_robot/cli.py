"""`trpo-robot`: the command line. Each subcommand fills configs at the edge and calls the
core; every user error ends in one line on stderr and exit code 2, never a traceback."""
import argparse
import json
import sys

from trpo_robot.errors import (  # UsageError: also trpo_robot.cli's
    tensorboard_folder, UsageError, writable_folder)
from trpo_robot.paths import checkpoint_folder
from trpo_robot.twin import conditions as twin_conditions  # no MuJoCo: cheap to import


def make_env(env_id, **kwargs):
    import gymnasium as gym
    import trpo_robot.envs  # noqa: F401 - registers the project's arm environments
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise UsageError(f'cannot make environment {env_id!r}: {e}') from None
    if not isinstance(env.action_space, gym.spaces.Box):
        env.close()
        raise UsageError(f'{env_id} has a {type(env.action_space).__name__} action space; '
                         'TRPO here needs a continuous (Box) action space')
    if not isinstance(env.observation_space, gym.spaces.Box):
        env.close()
        raise UsageError(f'{env_id} has a {type(env.observation_space).__name__} '
                         'observation space; a flat Box is needed')
    return env


SEED_MAX = 2**32 - 1
"""numpy's and torch's seeds are unsigned 32-bit."""


def check_seed(seed):
    """Here, not as an argparse type, so that the error is the CLI's one line."""
    if not 0 <= seed <= SEED_MAX:
        raise UsageError(f'--seed {seed}: a seed is an integer in 0..{SEED_MAX}')


def cmd_train(args):
    from trpo_robot.plots import plot_curve
    from trpo_robot.trpo.trainer import env_spaces, train

    check_seed(args.seed)
    conditions = _twin_conditions(args)
    out = writable_folder(args.out, '--out')
    board = tensorboard_folder(args.tensorboard) if args.tensorboard else None
    env = make_env(args.env, **conditions.backend_kwargs())
    spaces = env_spaces(env)
    if args.resume:
        agent, meta = _load_checkpoint(args.resume, spaces)
        if args.steps <= agent.total_steps:
            raise UsageError(f'--resume {args.resume}: the checkpoint has {agent.total_steps} '
                             f'steps and --steps {args.steps} is the total, so nothing would '
                             f'be trained; pass more, e.g. --steps {agent.total_steps + 100_000}')
        print(f'resuming from {args.resume}: policy version {agent.version}, '
              f'{agent.total_steps} steps; {args.steps - agent.total_steps} more to '
              f'{args.steps}')
        name = meta.get('extra', {}).get('preset', 'as saved')
    else:
        agent, name = _fresh_agent(args, env, spaces)
    print(f'training {args.env} for {args.steps} steps (seed {args.seed}, preset '
          f'{name}{_why(args, env)}) -> {out}')
    extra = {'env_id': args.env, 'seed': args.seed, 'preset': name}
    if conditions != twin_conditions.NOMINAL:
        extra['twin'] = conditions.as_dict()
    try:
        train(env, agent, args.steps, args.seed, out, extra=extra, tensorboard=board)
    finally:  # Ctrl-C too: the curve of what was learned so far
        curve = plot_curve(out, f'{args.env}, preset {name}, seed {args.seed}')
    print(f'done: {agent.total_steps} steps, policy version {agent.version}; checkpoint in '
          f'{out / "checkpoint"}; curve {curve or "none (no update finished)"}')
    return 0


def _twin_conditions(args):
    """--randomize, --latency, --noise: settings of the MuJoCo twin, so only the project's
    arm envs (trpo_robot/...) take them; any other env has no twin to set."""
    from trpo_robot.envs import ARM_ENVS
    conditions = twin_conditions.from_arguments(args)
    if conditions != twin_conditions.NOMINAL and args.env not in ARM_ENVS:
        raise UsageError(f'{", ".join(twin_conditions.FLAGS)} set the MuJoCo twin of the '
                         f'arm envs ({", ".join(ARM_ENVS)}); {args.env} has no twin')
    return conditions


def _fresh_agent(args, env, spaces):
    """A new agent and its preset's name; `auto` picks the preset from the env's family."""
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import preset, resolve_preset
    name = resolve_preset(args.preset, env.spec)
    try:
        config = preset(name)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return Agent(spaces['obs_dim'], spaces['act_dim'], config, args.seed), name


def _why(args, env):
    from trpo_robot.trpo.config import env_family
    if args.preset != 'auto' or args.resume:
        return ''
    family = env_family(env.spec)
    return f', picked by --preset auto for {family}' if family else \
        ', what --preset auto picks outside the families with a preset of their own'


def _load_checkpoint(folder, spaces=None):
    from trpo_robot.trpo import checkpoint
    path = checkpoint_folder(folder)
    dims = {} if spaces is None else {'expect_obs_dim': spaces['obs_dim'],
                                      'expect_act_dim': spaces['act_dim']}
    try:
        return checkpoint.load(path, **dims)
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None


def cmd_eval(args):
    import numpy as np
    from trpo_robot.trpo.rollout import evaluate

    check_seed(args.seed)
    agent, meta = _load_checkpoint(args.checkpoint)
    env_id = args.env or meta.get('extra', {}).get('env_id')
    if not env_id:
        raise UsageError('the checkpoint does not name its environment; pass --env')
    env = make_env(env_id)
    _, meta = _load_checkpoint(args.checkpoint, {
        'obs_dim': int(np.prod(env.observation_space.shape)),
        'act_dim': env.action_space.shape[0]})
    agent.obs_norm.frozen = True
    returns = evaluate(env, agent, args.episodes, args.seed)
    print(json.dumps({'mean_return': float(returns.mean()), 'std_return': float(returns.std()),
                      'episodes': int(args.episodes)}))
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'{value} must be positive')
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog='trpo-robot', description=__doc__)
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    p = sub.add_parser('train', help='train TRPO on any gymnasium env with a Box action space')
    p.add_argument('--env', required=True, help='gymnasium env id, e.g. Pendulum-v1')
    p.add_argument('--steps', type=_positive_int, default=100_000,
                   help='total environment steps (a resumed run counts its earlier steps)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='runs/train', help='folder for checkpoint, progress.csv '
                   'and learning_curve.png')
    p.add_argument('--preset', default='auto', help="TRPO preset: auto (default: "
                   "default_mujoco for gymnasium's MuJoCo tasks, else default), default, "
                   'default_mujoco, pendulum, mujoco, reacher, dense_reach (the arm tasks: '
                   'what `learn` runs), senseact')
    p.add_argument('--resume', metavar='DIR', help='continue from this checkpoint')
    p.add_argument('--tensorboard', metavar='DIR', help='write TensorBoard scalars here, one '
                   'point per update (README.md, "TensorBoard", lists them)')
    twin_conditions.add_arguments(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser('eval', help='evaluate a checkpoint with deterministic actions')
    p.add_argument('--checkpoint', required=True, help='checkpoint folder (or run folder)')
    p.add_argument('--episodes', type=_positive_int, default=10)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--env', help='override the env id recorded in the checkpoint')
    p.set_defaults(func=cmd_eval)
    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands():
    """Subcommands that live with their layer (ROS, hardware); each module adds its own."""
    import importlib
    for name in ('trpo_robot.commands',):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        yield from module.REGISTRARS


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'func', None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as e:
        print(f'trpo-robot: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('trpo-robot: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
