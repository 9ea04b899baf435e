"""The launch files: read as source, and run for real with `ros2 launch`.

The source checks hold everywhere: every executable they start is a console script of
this package, every YAML they name exists and is installed by the wheel, every argument is
described, every parameter they override is one the nodes know. The rest runs
`ros2 launch trpo_robot ...` as a user would, against the installed package (ament index,
share/trpo_robot, lib/trpo_robot): wherever the launch system is importable (a ROS 2
distribution, or the wheels `make test` installs from ../shared/ros2-launch) they run, and
where it is not they skip and say so.
"""
import ast
from dataclasses import fields
import os
from pathlib import Path
import re
import subprocess
import sys
import zipfile

import pytest

from launch_support import (Launch, LAUNCH_FILES, launch_env, launch_missing, MARKER,
                            needs_launch, PACKAGE, ROOT)
from ros_support import episodes_after, state_probe, stop_until_held
from trpo_robot.paths import share_file
from trpo_robot.ros import graph as G
from trpo_robot.ros import params as P
from trpo_robot.ros import plan
from trpo_robot.ros.params import DxlDriverParams, LearnerParams, RobotParams
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import checkpoint as ck


def _calls(tree, name):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, 'attr', None)
            if called == name:
                yield node


def _kw(call, key):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    return None


def _const(node):
    return ast.literal_eval(node) if node is not None else None


def _console_scripts():
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for call in _calls(tree, 'setup'):
        eps = ast.literal_eval(_kw(call, 'entry_points'))
        return {entry.split('=')[0].strip() for entry in eps['console_scripts']}
    raise AssertionError('setup() not found in setup.py')


@pytest.fixture(scope='module')
def wheel_files(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(out), str(ROOT)], check=True, capture_output=True)
    (wheel,) = out.glob('trpo_robot-*.whl')
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_there_are_launch_files():
    assert {p.name for p in LAUNCH_FILES} >= {'learn.launch.py', 'twin.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_executable_is_a_console_script(path):
    text = path.read_text()
    tree = ast.parse(text)
    named = [_kw(c, 'executable') for c in _calls(tree, 'Node')]
    executables = {_const(e) for e in named if isinstance(e, ast.Constant)}
    if 'plan.learning_graph(' in text:  # it starts the nodes of the one graph definition
        executables |= set(plan.EXECUTABLES)
    assert executables and len(executables) >= len(named), f'{path.name}: {named}'
    assert executables <= _console_scripts()
    for exe in executables:
        module = __import__(f'trpo_robot.ros.{exe}', fromlist=['main'])
        assert callable(module.main)


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_argument_is_described(path):
    tree = ast.parse(path.read_text())
    args = list(_calls(tree, 'DeclareLaunchArgument'))
    assert args
    for call in args:
        name = _const(call.args[0])
        description = _const(_kw(call, 'description'))
        assert isinstance(description, str) and len(description) > 20, name
    names = {_const(c.args[0]) for c in args}
    assert 'robot' in names and 'namespace' in names
    robot = next(c for c in args if _const(c.args[0]) == 'robot')
    assert _kw(robot, 'choices') is not None, 'robot must list its choices'


def test_learn_launch_has_the_documented_arguments():
    tree = ast.parse((ROOT / 'launch' / 'learn.launch.py').read_text())
    names = {_const(c.args[0]) for c in _calls(tree, 'DeclareLaunchArgument')}
    assert {'robot', 'use_sim', 'task', 'config', 'namespace'} <= names


def _robot_choices(path):
    tree = ast.parse(path.read_text())
    for call in _calls(tree, 'DeclareLaunchArgument'):
        if _const(call.args[0]) == 'robot':
            choices = _kw(call, 'choices')
            if isinstance(choices, ast.Name):  # a module-level constant
                for node in ast.walk(tree):
                    if isinstance(node, ast.Assign) and any(
                            getattr(t, 'id', None) == choices.id for t in node.targets):
                        return ast.literal_eval(node.value)
            return ast.literal_eval(choices)
    raise AssertionError('no robot argument')


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_every_yaml_exists_and_is_installed(path, wheel_files):
    text = path.read_text()
    names = {'learner.yaml'} if 'learner.yaml' in text else set()
    for robot in _robot_choices(path):
        names.add(f'{robot}.yaml')
    for name in names:
        assert (ROOT / 'config' / name).is_file(), name
        assert f'trpo_robot-0.1.0.data/data/share/trpo_robot/config/{name}' in wheel_files
    assert f'trpo_robot-0.1.0.data/data/share/trpo_robot/launch/{path.name}' in wheel_files


def test_package_files_are_installed(wheel_files):
    share = 'trpo_robot-0.1.0.data/data/share'
    for name in ('trpo_robot/package.xml', 'ament_index/resource_index/packages/trpo_robot',
                 'trpo_robot/urdf/ur5.urdf', 'trpo_robot/urdf/dxl_arm.urdf',
                 'trpo_robot/sim/scene.xml', 'trpo_robot/sim/robots.yaml'):
        assert f'{share}/{name}' in wheel_files, name


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_overridden_parameters_exist(path):
    known = {f.name for c in (RobotParams, LearnerParams, DxlDriverParams)
             for f in fields(c)}
    known.add('use_sim_time')
    tree = ast.parse(path.read_text())
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.ctx, ast.Store):
            keys.add(node.slice.value)
    assert keys and keys <= known, keys - known


# ---------------------------------------------------------------- ros2 launch, for real

def _progress(run):
    """Newest checkpoint version and the number of recorded episodes, from disk."""
    try:
        version = ck.read_meta(run / 'checkpoint')['policy_version']
    except ck.CheckpointError:
        version = -1
    episodes = run / 'episodes'
    return version, len(EpisodeStore(episodes).episodes()) if episodes.is_dir() else 0


@needs_launch
@pytest.mark.parametrize('robot, batch', [('ur5', 200), ('dxl', 150)])
def test_ros2_launch_learns_and_stops_cleanly(robot, batch, tmp_path, prefix, ros2):
    """The documented command on the twin: policy versions advance and episodes are
    recorded on disk; Ctrl-C stops every node cleanly, exit 0, with a final checkpoint."""
    lvalues = P.node_parameters([share_file('config', 'learner.yaml')], 'learner_node')
    lvalues['trpo.batch_steps'] = batch  # two to three episodes per update
    learner_yaml = P.write_param_file(tmp_path / 'learner.yaml',
                                      P.to_ros(P.build(P.LearnerParams, lvalues)))
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'progress.csv').write_text('an earlier run\n')  # set aside, as learn --out does
    launch = Launch(ros2, launch_env(tmp_path, prefix), tmp_path, 'learn.launch.py',
                    [f'robot:={robot}', 'use_sim:=true', 'real_time_factor:=2.0',
                     f'out:={run}', f'learner_config:={learner_yaml}'])
    try:
        def learned():
            assert launch.proc.poll() is None, f'ros2 launch exited:\n{launch.output()}'
            version, episodes = _progress(run)
            return version >= 2 and episodes >= 4
        try:
            G.wait_for(learned, timeout=240, interval=0.2, what='two policy updates')
        except TimeoutError as e:
            raise AssertionError(f'{e}; on disk {_progress(run)}\n{launch.output()[-4000:]}')
        before = _progress(run)
        code = launch.interrupt(timeout=90)
        text = launch.output()
        assert code == 0, text[-4000:]
        for node in ('twin_node', 'actor_node', 'learner_node'):
            assert re.search(rf'\[{node}-\d+\]: process has finished cleanly', text), \
                f'{node} did not exit cleanly:\n{text[-4000:]}'
        stop = re.search(r'learner stopped at version (\d+), (\d+) steps; checkpoint (\S+)',
                         text)
        assert stop, text[-4000:]
        meta = ck.read_meta(run / 'checkpoint')
        assert Path(re.sub(r'\x1b\[[0-9;]*m', '', stop.group(3))) == run / 'checkpoint'
        assert meta['policy_version'] == int(stop.group(1)) >= before[0]
        assert meta['total_steps'] == int(stop.group(2)) >= 2 * batch
        assert (run / 'progress.csv').is_file()
        assert _progress(run)[1] >= before[1]
        earlier = list((run / 'earlier').iterdir())
        assert len(earlier) == 1 and f'was moved to {earlier[0]}' in text, text[:4000]
        assert (earlier[0] / 'progress.csv').read_text() == 'an earlier run\n'
        assert 'an earlier run' not in (run / 'progress.csv').read_text()
    finally:
        launch.close()


@needs_launch
def test_under_ros2_launch_the_actor_resets_a_held_twin_and_learning_goes_on(
        tmp_path, prefix, ros2):
    """`ros2 launch` has no `trpo-robot learn` to act as the twin's operator, so the actor
    is: a guard silent until the arm is held (a host's hiccup) costs one episode, then the
    actor resets the arm itself and episodes are recorded again."""
    run = tmp_path / 'run'
    env = launch_env(tmp_path, prefix)
    launch = Launch(ros2, env, tmp_path, 'learn.launch.py',
                    ['robot:=ur5', 'use_sim:=true', 'real_time_factor:=2.0', f'out:={run}'])
    probe = None
    try:
        def recorded(after=0.0, n=1):
            assert launch.proc.poll() is None, f'ros2 launch exited:\n{launch.output()}'
            return (run / 'episodes').is_dir() and episodes_after(run / 'episodes', after) >= n
        G.wait_for(recorded, 240, 0.2, 'a first episode')
        guard = int(re.search(r'\[guard_node-\d+\]: process started with pid \[(\d+)\]',
                              launch.output()).group(1))
        probe = state_probe(int(env['ROS_DOMAIN_ID']), ['actor_node'])
        began = stop_until_held(guard, probe, 'actor_node')
        # the episode the hold cut, then one acted after the actor's own reset
        G.wait_for(lambda: recorded(began, 2), 240, 0.2, 'episodes after the hold')
        text = launch.output()
        # one hiccup can hold twice (a guard starved again as it resumes): a release it is
        assert re.search(r'twin: the actor ends hold \d of 3 a run: auto reset started',
                         text), text[-4000:]
        assert launch.interrupt(timeout=90) == 0, launch.output()[-4000:]
    finally:
        if probe is not None:
            probe.close()
        launch.close()


def _choice_arguments():
    """(launch file, argument, choices) of every argument that enumerates its values, as
    the launch system itself reads the file."""
    if launch_missing():
        return []
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    out = []
    for path in LAUNCH_FILES:
        for arg in get_launch_description_from_python_launch_file(str(path)) \
                .get_launch_arguments():
            if arg.choices:
                out.append((path.name, arg.name, list(arg.choices)))
    return out


@needs_launch
def test_the_enumerated_arguments_are_the_expected_ones():
    names = {(f, a) for f, a, _ in _choice_arguments()}
    assert {('learn.launch.py', 'robot'), ('learn.launch.py', 'use_sim'),
            ('learn.launch.py', 'reset_mode'), ('twin.launch.py', 'robot')} <= names


@needs_launch
@pytest.mark.parametrize('launch_file, name, choices', _choice_arguments(),
                         ids=lambda v: v if isinstance(v, str) else '')
def test_launch_refuses_a_value_outside_the_choices(launch_file, name, choices, tmp_path,
                                                    prefix, ros2):
    """robot:=foo must stop ros2 launch itself, before any node starts, naming the choices."""
    launch = Launch(ros2, launch_env(tmp_path, prefix), tmp_path, launch_file,
                    [f'{name}:=foo'])
    try:
        code = launch.proc.wait(120)
    finally:
        launch.close()
    text = launch.output()
    assert code != 0, text
    assert f'Argument "{name}" provided value "foo" is not valid' in text, text
    assert f'Valid options are: {choices}' in text, text
    assert 'process started' not in text, text


@needs_launch
@pytest.mark.parametrize('args, said', [
    (['arms:=0'], 'arms:=0: a number of arms, 1 or more'),
    (['arms:=two'], 'arms:=two: a number of arms'),
    (['arms:=2', 'robot:=dxl', 'use_sim:=false', 'port:=/dev/ttyUSB0'], 'one serial port'),
    (['real_time_factor:=-1'], 'real_time_factor:=-1: auto or a number above 0'),
])
def test_a_graph_the_plan_cannot_build_stops_the_launch_and_says_why(args, said, tmp_path,
                                                                     prefix, ros2):
    launch = Launch(ros2, launch_env(tmp_path, prefix), tmp_path, 'learn.launch.py', args)
    try:
        code = launch.proc.wait(120)
    finally:
        launch.close()
    text = launch.output()
    assert code != 0 and said in text, text
    assert 'process started' not in text, text


def _learn_launch_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('learn_launch',
                                                  ROOT / 'launch' / 'learn.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_launch
@pytest.mark.parametrize('robot, arms, cores, carried', [
    ('ur5', 1, 2, 4), ('ur5', 2, 2, 1), ('ur5', 4, 2, 0.5), ('dxl', 4, 2, 0.5),
    ('ur5e', 2, 2, 0.25), ('ur5', 4, 8, 2)])
def test_the_launch_runs_twins_in_real_time_unless_the_host_cannot_carry_the_fleet(
        robot, arms, cores, carried):
    """real_time_factor:=auto (the default): real time, as a ROS user expects of a launch,
    or the fraction of it that `trpo-robot learn`'s rule says the host carries; a number
    more than the host carries is run with learn's warning."""
    twin_rtf = _learn_launch_module().twin_rtf
    yaml = share_file('config', f'{robot}.yaml')
    got, note = twin_rtf('auto', yaml, arms, cores)
    assert got == min(1.0, carried) and f'real_time_factor {got:g} (auto' in note, note
    asked, warning = twin_rtf('2', yaml, arms, cores)
    assert asked == 2.0
    overloaded = 'warning' in warning and f'sustains real_time_factor:={carried:g}' in warning
    assert overloaded == (carried < 2), warning


@needs_launch
def test_a_real_arm_without_a_validated_policy_ends_the_launch_with_what_to_run(tmp_path,
                                                                                prefix, ros2):
    """use_sim:=false is hardware: the actor refuses to start without policy:= (the
    sim-first gate, test_ros_gate.py), and the launch ends instead of running on without it."""
    launch = Launch(ros2, launch_env(tmp_path, prefix), tmp_path, 'learn.launch.py',
                    ['robot:=ur5', 'use_sim:=false', f'out:={tmp_path / "run"}'])
    try:
        code = launch.proc.wait(120)
    finally:
        launch.close()
    text = launch.output()
    assert code == 1, text
    assert 'actor_node: error: on hardware the actor starts only from a validated policy' \
        in text and 'trpo-robot validate --checkpoint' in text, text
    assert 'refused to start (exit 2)' in text and 'Traceback' not in text, text


@needs_launch
def test_every_node_console_script_is_an_executable_of_the_package(prefix):
    """launch_ros finds executables in <prefix>/lib/trpo_robot; every *_node console
    script must be there (tools/ament_develop.py or colcon puts them there)."""
    nodes = {name for name in _console_scripts() if name.endswith('_node')}
    assert {'twin_node', 'actor_node', 'learner_node'} <= nodes
    for name in nodes:
        exe = prefix / 'lib' / PACKAGE / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe


def test_ament_develop_lays_out_setup_py_and_prunes_what_it_dropped(tmp_path):
    """tools/ament_develop.py: the data files and console scripts setup.py declares, no
    hard-coded list; links and launchers setup.py no longer declares go away."""
    tool = [sys.executable, str(ROOT / 'tools' / 'ament_develop.py'), '--prefix', str(tmp_path)]
    subprocess.run(tool, check=True, capture_output=True, cwd=tmp_path)
    assert (tmp_path / MARKER).resolve() == ROOT / 'resource' / PACKAGE
    for path in LAUNCH_FILES:
        assert (tmp_path / 'share' / PACKAGE / 'launch' / path.name).resolve() == path
    lib = tmp_path / 'lib' / PACKAGE
    assert {p.name for p in lib.iterdir()} == _console_scripts()
    twin = (lib / 'twin_node').read_text()
    assert twin.startswith(f'#!{tmp_path / "bin" / "python"}\n')
    assert 'from trpo_robot.ros.twin_node import main' in twin
    assert os.access(lib / 'twin_node', os.X_OK)
    gone = tmp_path / 'share' / PACKAGE / 'launch' / 'gone.launch.py'
    gone.symlink_to(ROOT / 'launch' / 'gone.launch.py')
    (lib / 'gone_node').write_text(twin)
    (lib / 'someone_elses').write_text('#!/bin/sh\n')
    subprocess.run(tool, check=True, capture_output=True, cwd=tmp_path)
    assert not gone.is_symlink() and not (lib / 'gone_node').exists()
    assert (lib / 'someone_elses').exists()
