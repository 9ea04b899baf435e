"""`trpo-robot rollout`: watch a checkpoint's policy on the twin, as a GIF or an MP4.

The episodes are the ones `trpo-robot eval` scores (same seeds, mean actions, frozen
observation statistics), so a video shows the policy behind a number, not a lucky run.
Arm tasks of this project are drawn with the workspace box, the target and the shield's
interventions (``trpo_robot.twin.video``); any other gymnasium env that can render
rgb_array frames is shown as it draws itself, without overlays, which is still the
quickest way to see what a benchmark checkpoint does.

For reports: ``rollout_frames(checkpoint, ...)`` returns the frames as arrays.
Registered through ``trpo_robot.commands.REGISTRARS``; mujoco, torch and the video writers
are imported inside the command so that `trpo-robot --help` stays fast.
"""
import collections
import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np

from trpo_robot.cli import _load_checkpoint, check_seed, make_env
from trpo_robot.errors import UsageError, writable_folder

VIDEO_SUFFIXES = ('.gif', '.mp4')
MAX_SIDE = 4096
"""Pixels; larger frames would need several GB for one episode of a GIF."""


@dataclasses.dataclass
class EpisodeSummary:
    """What the progress line of one recorded episode reports."""

    steps: int
    episode_return: float
    final_distance: float | None
    """End effector to target at the last step, m (None for envs that do not report it)."""
    interventions: collections.Counter
    """Steps on which each shield rule stepped in."""
    intervened_steps: int | None
    """Steps with any intervention (None for envs without a shield)."""


def register_rollout(sub) -> None:
    p = sub.add_parser('rollout', help='record a checkpoint\'s deterministic episodes on '
                       'the twin as a GIF or MP4, with target, workspace box and shield '
                       'interventions drawn in')
    p.add_argument('--checkpoint', required=True, help='checkpoint folder (or run folder)')
    p.add_argument('--video', required=True, help='output file: .gif or .mp4')
    p.add_argument('--episodes', type=int, default=1, help='episodes, one after another')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the first episode (then seed+1, ...), as eval')
    p.add_argument('--width', type=int, default=320, help='frame width, pixels')
    p.add_argument('--height', type=int, default=240, help='frame height, pixels')
    p.add_argument('--env', help='override the env id recorded in the checkpoint')
    p.set_defaults(func=cmd_rollout)


def cmd_rollout(args) -> int:
    check_seed(args.seed)
    if args.episodes <= 0:
        raise UsageError(f'--episodes must be positive, got {args.episodes}')
    path = video_path(args.video, args.width, args.height)
    agent, env_id = load_policy(args.checkpoint, args.env)
    with _rendering(env_id, args.width, args.height) as (env, draw, fps):
        _check_fits(agent, env, args.checkpoint)
        with VideoWriter(path, fps) as writer:
            for k, summary in enumerate(record_episodes(env, agent, draw, args.episodes,
                                                        args.seed, writer.append)):
                print(_progress(k + args.seed, summary), flush=True)
    print(f'wrote {writer.count} frames ({args.width} x {args.height}, {fps:g} fps) of '
          f'{env_id} to {path}')
    return 0


def rollout_frames(checkpoint, episodes: int = 1, seed: int = 0, width: int = 320,
                   height: int = 240, env_id: str | None = None) -> list[np.ndarray]:
    """The frames (height, width, 3) uint8 of a checkpoint's first ``episodes`` evaluation
    episodes, one per agent step, with the overlays of ``trpo-robot rollout``.

    Raises ``UsageError`` (one line) for a checkpoint or env that cannot be drawn.
    """
    agent, env_id = load_policy(checkpoint, env_id)
    frames = []
    with _rendering(env_id, width, height) as (env, draw, _):
        _check_fits(agent, env, checkpoint)
        for _ in record_episodes(env, agent, draw, episodes, seed, frames.append):
            pass
    return frames


def load_policy(checkpoint, env_id=None):
    """(agent, env id) with the observation statistics frozen, as `eval` acts."""
    agent, meta = _load_checkpoint(checkpoint)
    env_id = env_id or meta.get('extra', {}).get('env_id')
    if not env_id:
        raise UsageError(f'checkpoint {checkpoint} does not name its environment; pass --env')
    agent.obs_norm.frozen = True
    return agent, env_id


def record_episodes(env, agent, draw, episodes, seed, on_frame):
    """Run ``episodes`` deterministic episodes seeded seed, seed+1, ... (as
    ``trpo.rollout.evaluate``), pass one ``draw(info)`` frame per step to ``on_frame``, and
    yield an ``EpisodeSummary`` after each; frames are handed on, not kept, so that a long
    MP4 needs no more memory than one frame."""
    low, high = env.action_space.low, env.action_space.high
    for k in range(episodes):
        raw, _ = env.reset(seed=seed + k)
        summary = EpisodeSummary(0, 0.0, None, collections.Counter(), None)
        done = False
        while not done:
            act = np.clip(agent.act_deterministic(raw), low, high)
            raw, reward, terminated, truncated, info = env.step(act)
            on_frame(draw(info))
            _count(summary, reward, info)
            done = terminated or truncated
        yield summary


def _count(summary, reward, info):
    summary.steps += 1
    summary.episode_return += float(reward)
    if 'intervention_names' in info:
        names = info['intervention_names']
        summary.interventions.update(names)
        summary.intervened_steps = (summary.intervened_steps or 0) + bool(names)
    if 'distance' in info:
        summary.final_distance = float(info['distance'])


def _progress(seed, s: EpisodeSummary) -> str:
    line = f'episode seed {seed}: {s.steps} steps, return {s.episode_return:.2f}'
    if s.final_distance is not None:
        line += f', final distance {s.final_distance:.3f} m'
    if s.intervened_steps is not None:
        rules = ', '.join(f'{name} {n}' for name, n in s.interventions.most_common())
        line += f', shield stepped in on {s.intervened_steps} steps' + (
            f' ({rules})' if rules else '')
    return line


# ---------------------------------------------------------------- what is drawn

def _rendering(env_id, width, height):
    """A context of (env, draw(info) -> frame, fps): the twin's own drawer for arm tasks,
    the env's rgb_array frames for anything else."""
    env = make_env(env_id)
    if _is_twin_arm(env):
        return _twin_rendering(env, width, height)
    env.close()
    return _plain_rendering(env_id, width, height)


@contextlib.contextmanager
def _twin_rendering(env, width, height):
    from trpo_robot.twin.video import FrameDrawer, RenderError
    arm = env.unwrapped
    box = (arm.shield.config.workspace_low, arm.shield.config.workspace_high)
    try:
        try:
            drawer = FrameDrawer(arm.backend, box, width, height)
        except RenderError as e:
            raise UsageError(str(e)) from None
        with drawer:
            yield env, lambda info: drawer.draw(info.get('intervention_names', ())), 1 / arm.dt
    finally:
        env.close()


@contextlib.contextmanager
def _plain_rendering(env_id, width, height):
    env = _make_rgb_env(env_id, width, height)
    fps = float(env.metadata.get('render_fps') or 30)
    try:
        yield env, lambda info: _fit(_env_frame(env, env_id), (width, height)), fps
    finally:
        env.close()


def _is_twin_arm(env) -> bool:
    from trpo_robot.robot.env import ArmEnv
    arm = env.unwrapped
    if not isinstance(arm, ArmEnv):
        return False
    from trpo_robot.twin.backend import MujocoBackend  # cheap: make_env builds arms on it
    return isinstance(arm.backend, MujocoBackend)


def _make_rgb_env(env_id, width, height):
    """The env with rgb_array frames, at the asked size if it takes one (gymnasium's MuJoCo
    envs do, classic control does not)."""
    try:
        return make_env(env_id, render_mode='rgb_array', width=width, height=height)
    except TypeError:
        return make_env(env_id, render_mode='rgb_array')


def _env_frame(env, env_id):
    import gymnasium as gym
    try:
        frame = env.render()
    except gym.error.Error as e:
        raise UsageError(f'{env_id} cannot draw frames here: {_first_line(e)}') from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise UsageError(f'{env_id} does not render rgb_array frames, so it cannot be '
                         'recorded')
    return frame


def _fit(frame, size):
    """The frame at (width, height): env-drawn frames come at the env's own size."""
    if frame.shape[1::-1] == size:
        return frame
    from PIL import Image
    return np.asarray(Image.fromarray(frame[..., :3]).resize(size, Image.BILINEAR))


def _check_fits(agent, env, checkpoint):
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(env.action_space.shape[0])
    if (agent.obs_dim, agent.act_dim) != (obs_dim, act_dim):
        raise UsageError(f'checkpoint {checkpoint} has obs_dim {agent.obs_dim}, act_dim '
                         f'{agent.act_dim}, but the environment has {obs_dim}, {act_dim}')


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---------------------------------------------------------------- writing

def video_path(text, width, height) -> Path:
    """The output path, checked before any episode runs: a known suffix, a size the codec
    takes, a folder that can be written."""
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UsageError(f'--video {text}: unknown extension {path.suffix or "(none)"!r}; '
                         f'use one of {", ".join(VIDEO_SUFFIXES)}')
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise UsageError(f'--width and --height must be in 1..{MAX_SIDE}, got {width} x '
                         f'{height}')
    if suffix == '.mp4' and (width % 2 or height % 2):
        raise UsageError(f'an MP4 (H.264) needs an even width and height, got {width} x '
                         f'{height}')
    if path.is_dir():
        raise UsageError(f'--video {text} is a folder; name a file')
    writable_folder(path.parent, '--video')
    return path


class VideoWriter:
    """Frames to a GIF (Pillow) or an MP4 (imageio-ffmpeg), written under a temporary name
    and renamed at the end, so that a run stopped half way leaves no truncated video."""

    def __init__(self, path, fps):
        self.path, self.fps, self.count = Path(path), float(fps), 0
        self._partial = self.path.with_name(f'.{self.path.stem}.partial{self.path.suffix}')
        self._gif = self.path.suffix.lower() == '.gif'
        self._frames = []
        self._mp4 = None if self._gif else _open_mp4(self._partial, self.fps)

    def append(self, frame):
        if self._gif:
            from PIL import Image
            # Palette images: a third of the memory, and a GIF is made of them anyway. The
            # octree keeps small saturated patches (the markers) that median cut merges
            # into the greys around them.
            self._frames.append(Image.fromarray(frame).quantize(
                colors=255, method=Image.Quantize.FASTOCTREE))
        else:
            self._mp4.append_data(frame)
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._mp4 is not None:
                self._mp4.close()
            self._partial.unlink(missing_ok=True)

    def _finish(self):
        if self.count == 0:
            raise UsageError('no frames were drawn, so no video was written')
        if self._gif:
            first, *rest = self._frames
            first.save(self._partial, save_all=True, append_images=rest, loop=0,
                       duration=round(1000 / self.fps), optimize=True)
        else:
            self._mp4.close()
        os.replace(self._partial, self.path)


def _open_mp4(path, fps):
    try:
        import imageio.v2 as imageio
        writer = imageio.get_writer(path, format='FFMPEG', fps=fps, codec='libx264',
                                    pixelformat='yuv420p', macro_block_size=2)
    except (ImportError, RuntimeError) as e:
        raise UsageError(f'MP4 needs imageio and imageio-ffmpeg ({_first_line(e)}); pip '
                         'install "imageio>=2" "imageio-ffmpeg>=0.4", or write a .gif') from None
    return writer
