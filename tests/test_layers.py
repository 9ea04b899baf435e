"""The architecture's import rules, read from the source: a layer never imports upward."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / 'trpo_robot'
FORBIDDEN = {
    'trpo': {'mujoco', 'rclpy', 'gymnasium', 'trpo_robot.robot', 'trpo_robot.twin',
             'trpo_robot.hw', 'trpo_robot.ros', 'serial', 'dynamixel_sdk'},
    'robot': {'mujoco', 'rclpy', 'serial', 'dynamixel_sdk', 'torch', 'trpo_robot.twin',
              'trpo_robot.hw', 'trpo_robot.ros'},
    'twin': {'rclpy', 'trpo_robot.ros', 'trpo_robot.hw'},
    'hw': {'rclpy', 'trpo_robot.ros'},
}


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
