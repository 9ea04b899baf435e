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
