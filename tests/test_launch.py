"""The launch files, checked with what runs here.

`launch` and `launch_ros` come with a ROS distribution and cannot be installed on this
machine, so the files are read as source: every executable they start is a console script
of this package, every YAML they name exists and is installed by the wheel, every argument
is described, and every parameter they override is one the nodes know. Where `launch` is
importable (a ROS machine), test_real_launch starts learn.launch.py for real.
"""
import ast
import subprocess
import sys
import time
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest

from trpo_robot.ros.params import DxlDriverParams, LearnerParams, RobotParams

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))


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
    tree = ast.parse(path.read_text())
    executables = {_const(_kw(c, 'executable')) for c in _calls(tree, 'Node')}
    assert executables, f'{path.name} starts no node'
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


def test_real_launch():
    """On a ROS machine: start learn.launch.py on the twin; all three nodes must join the
    graph. (The repository's launch/ folder would import as a namespace package named
    'launch', so the real package is recognised by launch_ros.)"""
    pytest.importorskip('launch_ros', reason='launch and launch_ros come with a ROS '
                        'distribution; none is installed on this machine')
    import threading

    import launch
    import rclpy
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    source = PythonLaunchDescriptionSource(str(ROOT / 'launch' / 'learn.launch.py'))
    service = launch.LaunchService(argv=[], noninteractive=True)
    service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
        source, launch_arguments={'robot': 'dxl', 'use_sim': 'true',
                                  'real_time_factor': '5.0'}.items())]))
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    rclpy.init()
    probe = rclpy.create_node('launch_probe')
    try:
        wanted, seen = {'twin_node', 'actor_node', 'learner_node'}, set()
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and not wanted <= seen:
            rclpy.spin_once(probe, timeout_sec=0.5)
            seen = {name for name, _ in probe.get_node_names_and_namespaces()}
        assert wanted <= seen, seen
    finally:
        probe.destroy_node()
        rclpy.shutdown()
        service.shutdown()
        runner.join(timeout=30.0)
