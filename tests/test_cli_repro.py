"""`trpo-robot train` and the Python API, each in its own fresh process, train the same
policy from the same seed: the same progress.csv rows and bit-identical weights (issue #16).

The CLI scored -376 where bench/learning.py, which uses the API, scored -142 for the same
seed and preset: orthogonal initialisation rounds with the number of torch threads, and
the CLI built its agent at the default count (the machine's cores) where the bench had set
one thread. Each side runs in a subprocess, so that nothing the pytest process imported or
set decides the outcome, and the CLI side runs with four threads, as on a four-core machine,
so that the test tells the two apart on any machine, one with a single core included."""
import csv
import json
import subprocess
import sys
from pathlib import Path

STEPS, SEED, PRESET = 3072, 2, 'pendulum'
TIMING = {'update_time', 'wall_s'}
"""progress.csv columns that measure time, not learning."""

CLI = '''
import sys
import torch
torch.set_num_threads(4)  # the default of a four-core machine, where the CLI builds its agent
from trpo_robot.cli import main
sys.exit(main(sys.argv[1:]))
'''

API = '''
import sys
import gymnasium as gym
import torch
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import preset
from trpo_robot.trpo.trainer import train
steps, seed, name, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.set_num_threads(1)  # as bench/learning.py does before it builds the agent
env = gym.make('Pendulum-v1')
agent = Agent(env.observation_space.shape[0], env.action_space.shape[0], preset(name), seed)
train(env, agent, steps, seed, out, printer=lambda line: None)
'''


def _python(code, args, env, cwd):
    r = subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True,
                       text=True, env=env, cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr


def _progress(run):
    with open(run / 'progress.csv', newline='') as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _weights_sha256(run):
    """The checkpoint's SHA-256 of its weights: policy, value network, observation
    normalizer and the value optimizer's state (meta.json's other facts differ: the CLI
    records its env id and preset)."""
    return json.loads((run / 'checkpoint' / 'meta.json').read_text())['weights_sha256']


def test_cli_main_and_the_python_api_train_identically_for_a_seed(cli_env, tmp_path):
    cli_run, api_run = tmp_path / 'cli', tmp_path / 'api'
    _python(CLI, ['train', '--env', 'Pendulum-v1', '--steps', STEPS, '--seed', SEED,
                  '--preset', PRESET, '--out', cli_run], cli_env, tmp_path)
    _python(API, [STEPS, SEED, PRESET, api_run], cli_env, tmp_path)
    cli_rows, api_rows = _progress(cli_run), _progress(api_run)
    assert len(api_rows) == 3 and Path(api_run / 'checkpoint').is_dir()
    assert cli_rows == api_rows
    assert _weights_sha256(cli_run) == _weights_sha256(api_run)
