"""Process-wide settings (docs/ros.md, "Process-wide settings: only in a node's main()"):
made on a program's main path, never as a side effect of something a test or another
program imports and calls."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / 'trpo_robot'
PROCESS_WIDE = {'setswitchinterval', 'freeze', 'set_num_threads', 'sched_setscheduler',
                'signal', 'putenv', 'manual_seed_all'}
"""Calls that change the whole process (gc.freeze, sys.setswitchinterval, ...)."""
ALLOWED = {
    ('ros/node_utils.py', 'run_node'): 'the body of every node main()',
    ('ros/node_utils.py', '_realtime_process'): 'called by run_node alone',
    ('ros/learner_node.py', 'main'): 'the learner process',
    ('stop_signals.py', 'install'): 'called on main paths alone (run_node, learn.cmd_learn)',
    ('stop_signals.py', '__exit__'): 'restores the handlers install() replaced',
    ('ros/monitor.py', '_localhost_discovery'): "restores the environment after the probe's init",
    ('trpo/trainer.py', 'train'): "restores the caller's thread count",
    ('trpo/agent.py', '_one_thread'): "restores the caller's thread count",
    ('robot/rate.py', '_enter_realtime'): 'the calling thread only (tid 0)',
    ('robot/rate.py', 'release_realtime'): 'the calling thread only (tid 0)',
    ('hw/emulator/server.py', 'run'): 'the emulator process (its main, trpo-robot dxl-emulator)',
}


def _process_wide_calls():
    """(file, enclosing function, call) for each such call in the package."""
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                name = _called(node)
                if name in PROCESS_WIDE or _sets_environ(node):
                    found.append((str(path.relative_to(PACKAGE)), func.name,
                                  name or 'os.environ[...] ='))
    return found


def _called(node):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _sets_environ(node):
    targets = node.targets if isinstance(node, ast.Assign) else []
    return any(isinstance(t, ast.Subscript) and ast.unparse(t.value) == 'os.environ'
               for t in targets)


def test_process_wide_settings_are_made_on_main_paths_only():
    """A nested function is listed under itself and its outer one: both must be allowed."""
    stray = sorted({(f, fn, c) for f, fn, c in _process_wide_calls()
                    if (f, fn) not in ALLOWED})
    assert not stray, ('process-wide settings outside a main path (move them to the '
                       f'node\'s main() / node_utils.run_node, or restore them): {stray}')


def test_a_probe_leaves_the_environment_as_it_found_it(monkeypatch):
    from trpo_robot.ros import graph as G
    from trpo_robot.ros.monitor import Probe
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET')
    monkeypatch.setenv('ROS_LOCALHOST_ONLY', '0')
    probe = Probe(G.free_domain_id())
    try:
        import os
        assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
        assert os.environ['ROS_LOCALHOST_ONLY'] == '0'
    finally:
        probe.close()


@pytest.mark.timeout(120)
def test_train_gives_torch_its_thread_count_back():
    import gymnasium as gym
    import torch
    from trpo_robot.trpo.agent import Agent
    from trpo_robot.trpo.config import TRPOConfig
    from trpo_robot.trpo.trainer import train
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        agent = Agent(3, 1, TRPOConfig(batch_steps=200), seed=0)
        train(gym.make('Pendulum-v1'), agent, 200, 0, printer=lambda line: None,
              on_update=lambda *_: seen.append(torch.get_num_threads()))
        assert seen == [1]  # one thread while it trains
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


REALTIME_CHECK = '''
import logging, sys, threading
from trpo_robot.ros import node_utils as U
stop = threading.Event()
worker = threading.Thread(target=stop.wait)
worker.start()
before = U.is_realtime(worker)
granted = U._realtime_process(10, logging.getLogger('check'), 'check')
switched = abs(sys.getswitchinterval() - U.SWITCH_INTERVAL) < 1e-9
print(before, granted, U.is_realtime(worker), switched)
stop.set()
worker.join()
print(U.is_realtime(worker))
'''


def test_run_nodes_realtime_step_raises_every_thread_of_its_own_process():
    """In a process of its own, as run_node applies it in a node's."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, '-c', REALTIME_CHECK], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    (before, granted, after, switch), (ended,) = lines
    if granted == 'False':
        pytest.skip('SCHED_FIFO not permitted here (needs root or CAP_SYS_NICE)')
    assert (before, after, switch, ended) == ('False', 'True', 'True', 'False')
