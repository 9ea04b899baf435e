"""`trpo-robot rollout` and the twin's video frames: what is drawn, what is written, and
the one-line errors. Frames are small and episodes short: rendering is software GL here."""
import dataclasses
import subprocess

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
import torch

import trpo_robot.envs  # noqa: F401 - registers the arm envs
from trpo_robot import cli
from trpo_robot.robot import tasks
from trpo_robot.rollout_cli import record_episodes, rollout_frames
from trpo_robot.trpo import checkpoint
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.trpo.rollout import evaluate
from trpo_robot.twin.video import ALERT_RGB, box_edges, FrameDrawer, mark_interventions

UR5_2D = 'trpo_robot/UR5Reacher2D-v0'
STEPS = 6
"""Agent steps per episode in these tests (the task's 4 s would be 100 frames)."""
W, H = 96, 72


@pytest.fixture
def short_episodes(monkeypatch):
    task = tasks.TASKS['ur5_reacher_2d']
    short = dataclasses.replace(task, episode_seconds=STEPS * task.agent_dt)
    monkeypatch.setitem(tasks.TASKS, 'ur5_reacher_2d', short)


def _save_agent(folder, env_id, obs_dim=12, act_dim=2):
    agent = Agent(obs_dim, act_dim, TRPOConfig(), seed=0)
    with torch.no_grad():
        # A mean action of about +1 on every joint: the arm moves every step (no two
        # frames alike) and starts faster than the shield's acceleration limit allows.
        agent.pi.mean_net.layers[-1].bias.fill_(1.0)
    spaces = {'obs_dim': obs_dim, 'act_dim': act_dim, 'action_low': [-1.0] * act_dim,
              'action_high': [1.0] * act_dim}
    return checkpoint.save(agent, folder, spaces=spaces, extra={'env_id': env_id})


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    return _save_agent(tmp_path_factory.mktemp('ckpt'), UR5_2D)


@pytest.fixture
def arm():
    env = gym.make(UR5_2D)
    env.reset(seed=3)
    yield env.unwrapped
    env.close()


def _drawer(arm, size=(W, H), **kw):
    box = (arm.shield.config.workspace_low, arm.shield.config.workspace_high)
    return FrameDrawer(arm.backend, box, *size, **kw)


# ---------------------------------------------------------------- pure pieces

def test_box_edges_are_the_twelve_axis_aligned_edges_of_the_box():
    low, high = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 0.5, 5.0])
    edges = box_edges(low, high)
    assert len(edges) == 12
    lengths = sorted(float(np.linalg.norm(b - a)) for a, b in edges)
    assert lengths == [0.5] * 4 + [2.0] * 4 + [3.0] * 4
    ends = [tuple(p) for edge in edges for p in edge]
    assert len(set(ends)) == 8 and all(ends.count(c) == 3 for c in set(ends))
    for a, b in edges:
        assert np.count_nonzero(a != b) == 1  # parallel to one axis


def test_a_step_without_interventions_leaves_the_frame_alone():
    frame = np.full((60, 80, 3), 90, np.uint8)
    assert mark_interventions(frame, []) is frame


def test_interventions_draw_a_red_border_and_their_names():
    frame = np.full((60, 120, 3), 90, np.uint8)
    marked = mark_interventions(frame, ['WORKSPACE'])
    assert (frame == 90).all(), 'the input frame was changed'
    for edge in (marked[0], marked[-1], marked[:, 0], marked[:, -1]):
        assert (edge == ALERT_RGB).all()
    other = mark_interventions(frame, ['POSITION_LIMIT'])
    inside = (slice(3, -3), slice(3, -3))
    caption = np.any(marked[inside] != other[inside], axis=-1)
    assert caption.any(), 'the names are not written'
    rows = np.nonzero(caption.any(axis=1))[0]
    assert rows.min() > caption.shape[0] // 2, 'the caption is not at the bottom'


# ---------------------------------------------------------------- the twin's frames

def _orange(frame):
    r, g, b = frame.astype(int).transpose(2, 0, 1)
    return (r > 150) & (r > b + 80) & (g > b)


def _magenta(frame):
    """The end-effector marker on a step without interventions."""
    r, g, b = frame.astype(int).transpose(2, 0, 1)
    return (r > 150) & (b > 150) & (g < 120)


def test_the_box_overlay_is_drawn_in_its_colour(arm):
    with _drawer(arm) as with_box, _drawer(arm, overlays=False) as plain:
        boxed, bare = with_box.draw(), plain.draw()
    assert bare.std() > 10, 'a blank frame'
    assert _orange(bare).sum() < 5, 'the scene itself has the box colour'
    box = _orange(boxed)
    assert box.sum() > 100, 'no box to be seen'
    rows, cols = np.nonzero(box)
    # The box spans most of the picture: the camera is set from it.
    assert np.ptp(rows) > H / 2 and np.ptp(cols) > W / 4


def _greens(frame):
    r, g, b = frame.astype(int).transpose(2, 0, 1)
    return int(((g > r + 60) & (g > b + 60)).sum())


def test_the_target_is_visible_and_haloed_in_small_frames(arm):
    low, high = arm.shield.config.workspace_low, arm.shield.config.workspace_high
    arm.backend.set_target((np.asarray(low) + high) / 2)  # in front of the arm
    with _drawer(arm, size=(320, 240), overlays=False) as plain:
        assert _greens(plain.draw()) > 10, 'the target site is not drawn'
    with _drawer(arm, overlays=False) as small, _drawer(arm) as haloed:
        bare, halo = _greens(small.draw()), _greens(haloed.draw())
        assert halo > 10 and halo > 4 * bare
        arm.backend.set_target([0.0, -0.1, -20.0])  # deep under the floor
        assert _greens(haloed.draw()) == 0


def test_an_intervention_turns_the_end_effector_marker_red(arm):
    with _drawer(arm) as drawer:
        calm, alert = drawer.draw().astype(int), drawer.draw(['WORKSPACE']).astype(int)
    b = 4  # inside the border, above the caption
    diff = np.abs(alert - calm).sum(-1)[b:H // 2, b:-b] > 60
    assert diff.any(), 'the marker did not change'
    r, g, bl = alert[b:H // 2, b:-b][diff].T
    assert ((r > 150) & (g < 90) & (bl < 90)).mean() > 0.5
    assert (alert[0] == ALERT_RGB).all() and (calm[0] != ALERT_RGB).any()


def test_drawing_does_not_change_the_episodes_eval_scores(ckpt, short_episodes):
    agent, _ = checkpoint.load(ckpt)
    agent.obs_norm.frozen = True
    env = gym.make(UR5_2D)
    reference = gym.make(UR5_2D)
    try:
        with _drawer(env.unwrapped) as drawer:
            frames = []
            summaries = list(record_episodes(
                env, agent, lambda info: drawer.draw(info['intervention_names']), 2, 7,
                frames.append))
        expected = evaluate(reference, agent, 2, 7)
    finally:
        env.close()
        reference.close()
    assert [s.episode_return for s in summaries] == pytest.approx(expected, abs=1e-9)
    assert len(frames) == 2 * STEPS and all(s.steps == STEPS for s in summaries)
    assert sum(s.intervened_steps for s in summaries) > 0, 'the pushing policy met no shield'
    assert any((f[0] == ALERT_RGB).all() for f in frames), 'no intervention was drawn'


def test_rollout_frames_for_a_report(ckpt, short_episodes):
    frames = rollout_frames(ckpt, episodes=2, seed=1, width=W, height=H)
    assert len(frames) == 2 * STEPS
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    assert min(f.std() for f in frames) > 10
    assert np.abs(frames[0].astype(int) - frames[STEPS - 1]).mean() > 0.2, 'nothing moved'


def test_other_gymnasium_envs_are_recorded_without_overlays(tmp_path):
    ckpt = _save_agent(tmp_path / 'reacher', 'Reacher-v5', obs_dim=10)
    frames = rollout_frames(ckpt, episodes=1, width=64, height=48)
    assert len(frames) == 50  # Reacher-v5's time limit
    assert frames[0].shape == (48, 64, 3) and frames[0].std() > 10


# ---------------------------------------------------------------- the command

def _decoded(path):
    return iio.imread(path, index=None)


@pytest.mark.parametrize('suffix', ['.gif', '.mp4'])
def test_rollout_writes_a_video_of_every_step(ckpt, short_episodes, tmp_path, suffix,
                                              capsys):
    video = tmp_path / 'out' / f'roll{suffix}'
    code = cli.main(['rollout', '--checkpoint', str(ckpt), '--video', str(video),
                     '--episodes', '2', '--width', str(W), '--height', str(H)])
    out = capsys.readouterr().out
    assert code == 0
    frames = _decoded(video)
    assert frames.shape[:3] == (2 * STEPS, H, W)
    assert frames[..., :3].reshape(len(frames), -1).std(axis=1).min() > 10
    for frame in frames[..., :3]:  # the overlays survive the GIF palette and the codec
        assert _orange(frame).sum() > 50
        alerted = np.abs(frame[0].mean(0) - ALERT_RGB).max() < 40
        assert alerted or _magenta(frame).sum() > 3, 'the end-effector marker is lost'
    assert out.count('episode seed') == 2 and 'final distance' in out
    assert 'shield stepped in' in out
    assert [p.name for p in video.parent.iterdir()] == [video.name], 'a partial file is left'


def test_a_gif_plays_at_the_agent_rate(ckpt, short_episodes, tmp_path):
    video = tmp_path / 'r.gif'
    assert cli.main(['rollout', '--checkpoint', str(ckpt), '--video', str(video),
                     '--width', str(W), '--height', str(H)]) == 0
    with Image.open(video) as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info['duration'])
    assert durations == [40] * STEPS  # 25 frames/s: one per 40 ms agent step


def _one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('trpo-robot: error:'), err
    return lines[0]


@pytest.mark.parametrize('video, extra, words', [
    ('out.avi', [], "unknown extension '.avi'"),
    ('out', [], "unknown extension '(none)'"),
    ('/proc/nope/out.gif', [], 'cannot write there'),
    ('odd.mp4', ['--width', '95'], 'even width and height'),
    ('big.gif', ['--height', '100000'], '--width and --height must be in'),
    ('x.gif', ['--episodes', '0'], '--episodes must be positive'),
])
def test_bad_videos_are_one_line_errors(ckpt, tmp_path, capsys, video, extra, words):
    path = video if video.startswith('/') else str(tmp_path / video)
    code = cli.main(['rollout', '--checkpoint', str(ckpt), '--video', path, *extra])
    assert words in _one_line_error(capsys, code)
    assert not any(tmp_path.iterdir()), 'a file was written'


def test_a_checkpoint_for_another_env_is_a_one_line_error(ckpt, tmp_path, capsys):
    code = cli.main(['rollout', '--checkpoint', str(ckpt), '--video',
                     str(tmp_path / 'x.gif'), '--env', 'trpo_robot/DXLTracker-v0'])
    assert 'the environment has' in _one_line_error(capsys, code)


def test_a_checkpoint_without_an_env_asks_for_one(tmp_path, capsys):
    ckpt = _save_agent(tmp_path / 'anon', '')
    code = cli.main(['rollout', '--checkpoint', str(ckpt), '--video',
                     str(tmp_path / 'x.gif')])
    assert 'pass --env' in _one_line_error(capsys, code)


def test_without_opengl_the_error_says_what_to_set(ckpt, tmp_path, trpo_robot_cmd, cli_env):
    no_gl = ('MUJOCO_GL', 'DISPLAY', 'WAYLAND_DISPLAY')
    env = {k: v for k, v in cli_env.items() if k not in no_gl}
    r = subprocess.run(trpo_robot_cmd + ['rollout', '--checkpoint', str(ckpt), '--video',
                                         str(tmp_path / 'x.gif')],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'set MUJOCO_GL=egl or osmesa' in lines[0], r.stderr
    assert not (tmp_path / 'x.gif').exists()
