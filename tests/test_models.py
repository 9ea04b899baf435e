"""The URDFs against the published facts they claim to encode.

The reference numbers are copied by hand from /work/shared/reference/hardware.md (UR5 CB3
column; Dynamixel XM430-W350 section), not read from the URDFs, so a typo in either shows.
"""
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from trpo_robot.paths import urdf_path

TWO_PI = 2 * math.pi

# hardware.md, UR5 (CB3)
UR5_JOINTS = ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
              'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
UR5_EFFORT = (150.0, 150.0, 150.0, 28.0, 28.0, 28.0)
UR5_VELOCITY = math.pi  # 180 deg/s
UR5_MASS = {'base_link': 4.0, 'shoulder_link': 3.7, 'upper_arm_link': 8.393,
            'forearm_link': 2.275, 'wrist_1_link': 1.219, 'wrist_2_link': 1.219,
            'wrist_3_link': 0.1879}
UR5_DH_D = (0.089159, 0.0, 0.0, 0.10915, 0.09465, 0.0823)
UR5_DH_A = (0.0, -0.425, -0.39225, 0.0, 0.0, 0.0)
UR5_DH_ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)

# hardware.md, Dynamixel X-series (XM430-W350): 4.1 N m stall, 46 rpm no load; 82 g (e-Manual)
DXL_JOINTS = ('joint1', 'joint2', 'joint3')
DXL_EFFORT = 4.1
DXL_VELOCITY = 46 * TWO_PI / 60
DXL_SERVO_MASS = 0.082


def dh_fk(q):
    """Standard DH forward kinematics of the UR5: the 4x4 pose of the flange (tool0)."""
    pose = np.eye(4)
    for theta, d, a, alpha in zip(q, UR5_DH_D, UR5_DH_A, UR5_DH_ALPHA):
        ct, st, ca, sa = math.cos(theta), math.sin(theta), math.cos(alpha), math.sin(alpha)
        pose = pose @ np.array([[ct, -st * ca, st * sa, a * ct],
                                [st, ct * ca, -ct * sa, a * st],
                                [0.0, sa, ca, d],
                                [0.0, 0.0, 0.0, 1.0]])
    return pose


def _rpy(roll, pitch, yaw):
    def rx(t):
        return np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])

    def ry(t):
        return np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0], [-math.sin(t), 0, math.cos(t)]])

    def rz(t):
        return np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])

    return rz(yaw) @ ry(pitch) @ rx(roll)


def _axis_angle(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def urdf_fk(root, q, tip):
    """Pose of link ``tip`` from the URDF's joint origins and axes, walking from the root."""
    joints = {j.find('child').get('link'): j for j in root.iter('joint')}
    chain = []
    link = tip
    while link in joints:
        chain.append(joints[link])
        link = joints[link].find('parent').get('link')
    pose, angles = np.eye(4), iter(q)
    for joint in reversed(chain):
        origin = joint.find('origin')
        step = np.eye(4)
        step[:3, :3] = _rpy(*map(float, origin.get('rpy', '0 0 0').split()))
        step[:3, 3] = [float(x) for x in origin.get('xyz', '0 0 0').split()]
        if joint.get('type') == 'revolute':
            axis = [float(x) for x in joint.find('axis').get('xyz').split()]
            turn = np.eye(4)
            turn[:3, :3] = _axis_angle(axis, next(angles))
            step = step @ turn
        pose = pose @ step
    return pose


def _root(name):
    return ET.parse(urdf_path(name)).getroot()


def _revolute(root):
    return [j for j in root.iter('joint') if j.get('type') == 'revolute']


def _mass(root, link):
    inertial = root.find(f"link[@name='{link}']/inertial")
    return float(inertial.find('mass').get('value'))


def _configurations(n, count=6, seed=0):
    rng = np.random.default_rng(seed)
    return [np.zeros(n)] + [rng.uniform(-math.pi, math.pi, n) for _ in range(count - 1)]


def test_ur5_joint_names_and_limits_match_hardware_md():
    joints = _revolute(_root('ur5'))
    assert tuple(j.get('name') for j in joints) == UR5_JOINTS
    for joint, effort in zip(joints, UR5_EFFORT):
        limit = joint.find('limit')
        assert float(limit.get('lower')) == pytest.approx(-TWO_PI)
        assert float(limit.get('upper')) == pytest.approx(TWO_PI)
        assert float(limit.get('velocity')) == pytest.approx(UR5_VELOCITY)
        assert float(limit.get('effort')) == effort
        assert [float(x) for x in joint.find('axis').get('xyz').split()] == [0, 0, 1]


def test_ur5_link_masses_match_hardware_md():
    root = _root('ur5')
    assert {link: _mass(root, link) for link in UR5_MASS} == UR5_MASS


@pytest.mark.parametrize('name', ['ur5', 'dxl_arm'])
def test_inertias_are_physical(name):
    """Positive masses and principal moments that satisfy the triangle inequality."""
    for inertial in _root(name).iter('inertial'):
        assert float(inertial.find('mass').get('value')) > 0
        i = inertial.find('inertia')
        ixx, iyy, izz = (float(i.get(k)) for k in ('ixx', 'iyy', 'izz'))
        assert min(ixx, iyy, izz) > 0
        assert ixx + iyy >= izz and iyy + izz >= ixx and ixx + izz >= iyy


@pytest.mark.parametrize('name, tip', [('ur5', 'tool0'), ('dxl_arm', 'ee_link')])
def test_end_effector_link_hangs_off_a_fixed_joint(name, tip):
    fixed = [j for j in _root(name).iter('joint') if j.find('child').get('link') == tip]
    assert len(fixed) == 1 and fixed[0].get('type') == 'fixed'


@pytest.mark.parametrize('q', _configurations(6), ids=lambda q: np.array2string(q, 2))
def test_ur5_urdf_tool0_matches_dh_forward_kinematics(q):
    np.testing.assert_allclose(urdf_fk(_root('ur5'), q, 'tool0'), dh_fk(q), atol=1e-12)


def test_ur5_zero_pose_is_the_published_dh_pose():
    """At q = 0 the flange sits at (a2 + a3, -(d4 + d6), d1 - d5)."""
    expected = [-0.425 - 0.39225, -(0.10915 + 0.0823), 0.089159 - 0.09465]
    np.testing.assert_allclose(urdf_fk(_root('ur5'), np.zeros(6), 'tool0')[:3, 3], expected,
                               atol=1e-12)


def test_ur5_twin_keeps_the_urdf_kinematics():
    """MuJoCo's URDF import (and the twin's additions) must not move the flange."""
    from trpo_robot.twin import MujocoBackend
    with MujocoBackend('ur5', noise_std=0.0) as twin:
        for q in _configurations(6, count=4, seed=1):
            twin.reset_state(q)
            np.testing.assert_allclose(twin.ee_position(), dh_fk(q)[:3, 3], atol=1e-9)


def test_dxl_joint_names_and_limits_match_the_servo():
    joints = _revolute(_root('dxl_arm'))
    assert tuple(j.get('name') for j in joints) == DXL_JOINTS
    for joint in joints:
        limit = joint.find('limit')
        assert float(limit.get('effort')) == DXL_EFFORT
        assert float(limit.get('velocity')) == pytest.approx(DXL_VELOCITY, abs=1e-3)
        assert -2.6 <= float(limit.get('lower')) < 0 < float(limit.get('upper')) <= 2.6


def test_dxl_links_carry_their_servos_and_are_arm_sized():
    root = _root('dxl_arm')
    for link in ('link1', 'link2'):  # each holds the next joint's servo
        assert _mass(root, link) > DXL_SERVO_MASS
    links = ('joint3', 'link3-ee_link_fixed_joint')  # upper arm, forearm
    lengths = [np.linalg.norm([float(x) for x in j.find('origin').get('xyz').split()])
               for j in root.iter('joint') if j.get('name') in links]
    assert len(lengths) == 2
    assert all(0.1 <= length <= 0.15 for length in lengths)


def test_dxl_points_straight_up_at_zero():
    tip = urdf_fk(_root('dxl_arm'), np.zeros(3), 'ee_link')[:3, 3]
    np.testing.assert_allclose(tip[:2], 0.0, atol=1e-12)
    assert tip[2] == pytest.approx(0.055 + 0.04 + 0.12 + 0.11)
