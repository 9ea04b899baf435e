"""What `train` leaves to look at: TensorBoard scalars (with --tensorboard) and
learning_curve.png (always, Ctrl-C included); and the pictures' drawing itself.

The scalars are read back with TensorBoard's own reader, the pictures by their pixels.
`learn`'s scalars and timing_histogram.png are checked on a real graph run in
tests/test_ros_learn.py, the learner's scalars also in tests/test_ros_acting.py.
"""
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from board_support import assert_drawn, read_scalars
from trpo_robot.cli import main
from trpo_robot.plots import plot_curve, plot_timing, read_progress
from trpo_robot.robot.rate import LatenessHistogram
from trpo_robot.trpo import scalars as S
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.trpo.trainer import train

UPDATE_TAGS = {S.KL, S.ACCEPTED, S.BACKTRACKS, S.UPDATE_TIME}


class Flagged(gym.Env):
    """Known answers for every scalar: episodes of 10 steps with reward 1 (return 10), every
    second episode a success, and a 'shield' that changed every third step's command."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self):
        self.episode, self.t = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        info = {'interventions': int(self.t % 3 == 0), 'is_success': self.episode % 2 == 0}
        return np.zeros(2, np.float32), 1.0, False, self.t == 10, info


def _finite(points):
    return all(math.isfinite(v) for _, v in points)


def test_train_writes_each_scalar_once_per_update_with_its_known_value(tmp_path):
    config = TRPOConfig(batch_steps=50, policy_hidden=(8,), value_hidden=(8,))
    agent = Agent(2, 1, config, seed=0)
    train(Flagged(), agent, 100, seed=0, out=tmp_path / 'out', printer=lambda line: None,
          tensorboard=tmp_path / 'tb')
    got = read_scalars(tmp_path / 'tb')
    assert set(got) == {S.RETURN, S.SUCCESS, S.INTERVENTIONS} | UPDATE_TAGS  # no control/*
    assert all([step for step, _ in points] == [50, 100] for points in got.values()), got
    assert [v for _, v in got[S.RETURN]] == [10.0, 10.0]
    # Batch 1 holds episodes 1-5 (2 and 4 succeed), batch 2 episodes 6-10 (6, 8, 10).
    assert [v for _, v in got[S.SUCCESS]] == pytest.approx([0.4, 0.6])
    assert [v for _, v in got[S.INTERVENTIONS]] == pytest.approx([0.3, 0.3])
    assert all(v in (0.0, 1.0) for _, v in got[S.ACCEPTED]) and _finite(got[S.KL])
    rows = read_progress(tmp_path / 'out' / 'progress.csv')
    assert [r['success_rate'] for r in rows] == pytest.approx([0.4, 0.6])


def test_train_cli_writes_only_the_scalars_a_plain_gym_env_has(tmp_path):
    out, tb = tmp_path / 'run', tmp_path / 'tb'
    assert main(['train', '--env', 'Pendulum-v1', '--steps', '2048', '--preset', 'pendulum',
                 '--out', str(out), '--tensorboard', str(tb)]) == 0
    got = read_scalars(tb)
    # Pendulum has no success flag, no shield and no control loop: nothing, not zeros.
    assert set(got) == {S.RETURN} | UPDATE_TAGS, sorted(got)
    rows = read_progress(out / 'progress.csv')
    for points in got.values():
        assert [step for step, _ in points] == [r['steps'] for r in rows] == [1024, 2048]
        assert _finite(points)
    assert [v for _, v in got[S.RETURN]] == pytest.approx([r['mean_return'] for r in rows])
    assert_drawn(out / 'learning_curve.png')


def test_ctrl_c_in_train_keeps_the_scalars_and_draws_the_curve_so_far(tmp_path, monkeypatch):
    calls, update = [], Agent.update

    def interrupted_at_the_third(self, segments):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return update(self, segments)
    monkeypatch.setattr(Agent, 'update', interrupted_at_the_third)
    out, tb = tmp_path / 'run', tmp_path / 'tb'
    assert main(['train', '--env', 'Pendulum-v1', '--steps', '10240', '--preset', 'pendulum',
                 '--out', str(out), '--tensorboard', str(tb)]) == 130
    assert [step for step, _ in read_scalars(tb)[S.KL]] == [1024, 2048]
    assert_drawn(out / 'learning_curve.png')


def test_without_the_flag_train_draws_its_curve_and_never_loads_tensorboard(
        tmp_path, cli_env):
    script = ('import sys; from trpo_robot.cli import main; '
              f"code = main(['train', '--env', 'Pendulum-v1', '--steps', '2048', '--preset', "
              f"'pendulum', '--out', {str(tmp_path / 'run')!r}]); "
              "print(code, sorted(m for m in sys.modules if 'tensorboard' in m))")
    r = subprocess.run([sys.executable, '-c', script], env=cli_env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == '0 []'
    assert not list(tmp_path.rglob('events.out.tfevents.*'))
    assert_drawn(tmp_path / 'run' / 'learning_curve.png')


def test_a_missing_tensorboard_package_is_a_one_line_error_before_training(
        tmp_path, monkeypatch, capsys):
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'tensorboard' else find_spec(name, *a))
    assert main(['train', '--env', 'Pendulum-v1', '--out', str(tmp_path / 'run'),
                 '--tensorboard', str(tmp_path / 'tb')]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install' in err[0] and '--tensorboard' in err[0], err
    assert not (tmp_path / 'run' / 'progress.csv').exists()


def test_a_resumed_run_from_before_the_new_columns_keeps_its_file_and_draws(tmp_path):
    """progress.csv written before success_rate and wall_s existed: rows are appended
    under its own header, and the curve is drawn against steps alone."""
    out = tmp_path / 'run'
    out.mkdir()
    old = 'steps,version,mean_return,episodes,kl,accepted,reason,value_loss,entropy,update_time\n'
    (out / 'progress.csv').write_text(old + '50,1,9.0,5,0.01,True,accepted,1.0,1.0,0.1\n')
    agent = Agent(2, 1, TRPOConfig(batch_steps=50, policy_hidden=(8,), value_hidden=(8,)), 0)
    train(Flagged(), agent, 150, seed=0, out=out, printer=lambda line: None)
    lines = (out / 'progress.csv').read_text().splitlines()
    assert lines[0] + '\n' == old and len(lines) == 5
    assert all(len(line.split(',')) == 10 for line in lines)
    assert [r['steps'] for r in read_progress(out / 'progress.csv')] == [50, 50, 100, 150]
    assert_drawn(plot_curve(out, 'old file'))


def test_the_timing_histogram_draws_every_arm_and_nothing_without_records(tmp_path):
    records = {}
    rng = np.random.default_rng(0)
    for arm, median in (('arm1', 3e-4), ('arm2', 1e-3)):
        h = LatenessHistogram()
        for x in rng.lognormal(np.log(median), 0.7, 3000):
            h.add(float(x))
        records[arm] = {**h.to_dict(), 'period_s': 1.25e-3}
    assert plot_timing(tmp_path, {}, 'nothing') is None
    assert_drawn(plot_timing(tmp_path, records, 'two arms'))
