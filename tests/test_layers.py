"""The architecture's import rules, read from the source: a layer never imports upward."""
import ast
from pathlib import Path
import subprocess
import sys

import pytest

PKG = Path(__file__).resolve().parent.parent / 'trpo_robot'
FORBIDDEN = {
    'trpo': {'mujoco', 'rclpy', 'gymnasium', 'trpo_robot.robot', 'trpo_robot.twin',
             'trpo_robot.hw', 'trpo_robot.ros', 'serial', 'dynamixel_sdk'},
    'robot': {'mujoco', 'rclpy', 'serial', 'dynamixel_sdk', 'torch', 'trpo_robot.twin',
              'trpo_robot.hw', 'trpo_robot.ros'},
    'twin': {'rclpy', 'trpo_robot.ros', 'trpo_robot.hw'},
    'hw': {'rclpy', 'trpo_robot.ros', 'mujoco', 'trpo_robot.twin'},
}
"""``hw`` includes its servo emulator, which is given its physics (``ArmPhysics``): a
machine that drives real servos needs no MuJoCo and no twin."""


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _violations(layer):
    bad = []
    for path in sorted((PKG / layer).rglob('*.py')):
        for name in _imports(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + '.'):
                    bad.append(f'{path.relative_to(PKG.parent)} imports {name}')
    return bad


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layer_imports_point_downward(layer):
    assert _violations(layer) == []


def test_rclpy_only_in_the_ros_edge():
    offenders = [str(p.relative_to(PKG.parent)) for p in PKG.rglob('*.py')
                 if 'ros' not in p.relative_to(PKG).parts[:1]
                 and any(n == 'rclpy' or n.startswith('rclpy.') for n in _imports(p))]
    assert offenders == []


def test_the_rule_checker_sees_a_violation(tmp_path):
    bad = tmp_path / 'x.py'
    bad.write_text('import rclpy\nfrom mujoco import MjModel\n')
    assert set(_imports(bad)) == {'rclpy', 'mujoco'}


def test_the_hardware_layer_loads_no_mujoco_and_no_twin():
    """What the static rule cannot see: an import through a module outside the layers."""
    modules = sorted('.'.join(p.relative_to(PKG.parent).with_suffix('').parts)
                     for p in (PKG / 'hw').rglob('*.py'))
    code = (f'import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n'
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mujoco' "
            "or m.startswith('trpo_robot.twin')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         cwd=PKG.parent, check=True).stdout
    assert out.strip() == '[]'


def _mj_step_calls(path):
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call)
            and ast.unparse(node.func).split('.')[-1] == 'mj_step']


def test_one_place_steps_mujoco():
    """Every arm is stepped by twin/stepping.py's ArmStepper (the twin backend and the
    Dynamixel emulator's physics alike), so the two can never step an arm differently."""
    calls = {str(p.relative_to(PKG)): _mj_step_calls(p) for p in PKG.rglob('*.py')}
    assert {path for path, lines in calls.items() if lines} == {'twin/stepping.py'}
    assert len(calls['twin/stepping.py']) == 1
