"""`trpo-robot learn` end to end: the whole graph learns on the twin; Ctrl-C is safe."""
from pathlib import Path
import signal
import subprocess
import threading
import time

import pytest

from trpo_robot.ros import params as P
from trpo_robot.ros.learn import read_progress
from trpo_robot.trpo import checkpoint

pytestmark = pytest.mark.timeout(400)
CONFIG = Path(__file__).resolve().parent.parent / 'config'


def _learner_yaml(folder, batch):
    values = P.node_parameters([CONFIG / 'learner.yaml'], 'learner_node')
    values['trpo.batch_steps'] = batch
    return P.write_param_file(folder / 'learner_test.yaml', values)


def test_the_graph_learns_the_dxl_reacher(tmp_path, trpo_robot_cmd, cli_env):
    out = tmp_path / 'run'
    cmd = trpo_robot_cmd + ['learn', '--robot', 'dxl', '--task', 'reacher', '--steps', '10000',
                            '--rtf', '8', '--seed', '0', '--out', str(out),
                            '--learner-config', str(_learner_yaml(tmp_path, 1000))]
    result = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'done: budget' in result.stdout or 'done: success' in result.stdout
    rows = read_progress(out / 'progress.csv')
    assert len(rows) >= 8, result.stdout
    first = rows[0]['mean_return']
    last = sum(r['mean_return'] for r in rows[-3:]) / 3
    assert last > first + 2.0, f'return went from {first:.2f} to {last:.2f}\n{result.stdout}'
    assert (sum(r['final_distance'] for r in rows[-3:]) / 3 < rows[0]['final_distance'])
    agent, meta = checkpoint.load(out / 'checkpoint', expect_obs_dim=12, expect_act_dim=2)
    assert agent.version == rows[-1]['version'] and meta['extra']['task'] == 'dxl_reacher'
    assert (out / 'learning_curve.png').stat().st_size > 10_000
    assert (out / 'params' / 'robot.yaml').exists()


def test_synchronous_runs_act_one_batch_per_version_and_wait_for_each_update(
        tmp_path, trpo_robot_cmd, cli_env):
    """--synchronous, the baseline of bench/ros_async_vs_sync.py: every version acts one
    learner batch, then the arm waits (held_seconds before the next version's first
    episode) and no episode is ever stale."""
    from trpo_robot.store import EpisodeStore
    from trpo_robot.trpo import wire
    out, batch = tmp_path / 'run', 600
    cmd = trpo_robot_cmd + ['learn', '--robot', 'dxl', '--task', 'reacher', '--steps', '2400',
                            '--rtf', '8', '--seed', '1', '--out', str(out), '--synchronous',
                            '--learner-config', str(_learner_yaml(tmp_path, batch))]
    result = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=360)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'arm held for updates' in result.stdout
    episodes = []
    for _, _, path in EpisodeStore(out / 'episodes').episodes():
        segment, info = wire.decode_episode(EpisodeStore.read(path), 12, 2)
        episodes.append((segment.policy_version, len(segment), info['extra']['held_seconds']))
    versions = [v for v, _, _ in episodes]
    assert versions == sorted(versions) and versions[-1] >= 3, episodes
    longest = max(n for _, n, _ in episodes)
    for v in range(versions[-1]):
        acted = sum(n for version, n, _ in episodes if version == v)
        assert batch <= acted < batch + longest, (v, episodes)
    first = {v: versions.index(v) for v in set(versions)}
    for i, (v, _, held) in enumerate(episodes):  # the arm waited before each new version
        assert (held > 0.0) == (v >= 1 and i == first[v]), (i, episodes)
    assert all(r['stale'] == 0 for r in read_progress(out / 'progress.csv'))


def test_ctrl_c_stops_the_arm_writes_a_checkpoint_and_exits_0(tmp_path, trpo_robot_cmd,
                                                              cli_env):
    out = tmp_path / 'run'
    cmd = trpo_robot_cmd + ['learn', '--robot', 'dxl', '--steps', '100000', '--rtf', '4',
                            '--out', str(out)]
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any('] v0' in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, ''.join(lines)
            time.sleep(0.2)
        time.sleep(2.0)  # into the first episodes
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, ''.join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    text = ''.join(lines)
    assert 'interrupted: stopping the arm' in text
    assert (out / 'checkpoint' / 'meta.json').exists(), text
    assert 'actor stopped the arm' in (out / 'logs' / 'actor_node.log').read_text()
    assert 'learner stopped at version' in (out / 'logs' / 'learner_node.log').read_text()
