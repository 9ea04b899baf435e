"""RobotSpec: URDF parsing, forward kinematics and the Jacobian against known answers."""
import numpy as np
import pytest

from trpo_robot.paths import urdf_path
from trpo_robot.robot.spec import RobotSpec, URDFError

PLANAR = """<robot name="planar">
  <link name="base"/><link name="upper"/><link name="lower"/><link name="tip"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-2" upper="2" velocity="1.5" effort="10"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="upper"/><child link="lower"/>
    <origin xyz="0.3 0 0" rpy="0 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.5" upper="2.5" velocity="2" effort="5"/>
  </joint>
  <joint name="tip_fixed" type="fixed">
    <parent link="lower"/><child link="tip"/><origin xyz="0.2 0 0"/>
  </joint>
</robot>"""


def planar_fk(q):
    """By hand: two links of 0.3 m and 0.2 m turning about z, 0.1 m above the base."""
    a, b = q
    return np.array([0.3 * np.cos(a) + 0.2 * np.cos(a + b),
                     0.3 * np.sin(a) + 0.2 * np.sin(a + b), 0.1])


# A chain with every feature the parser folds: rpy origins, tilted and negative axes, a
# continuous joint, fixed joints between and after actuated ones, and a side branch.
TWISTED = [  # (name, type, xyz, rpy, axis)
    ('j1', 'revolute', (0.0, 0.0, 0.2), (0.0, 0.0, 0.3), (0.0, 0.0, 1.0)),
    ('f1', 'fixed', (0.05, 0.0, 0.0), (0.2, -0.4, 0.1), None),
    ('j2', 'continuous', (0.0, 0.1, 0.3), (1.2, 0.0, -0.5), (0.0, 1.0, 0.0)),
    ('j3', 'revolute', (0.25, 0.0, 0.0), (0.0, 0.7, 0.0), (1.0, 1.0, 0.0)),
    ('j4', 'revolute', (0.0, 0.0, 0.15), (0.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    ('f2', 'fixed', (0.02, 0.03, 0.12), (0.3, 0.2, 0.1), None),
]


def twisted_urdf(extra=''):
    links = ['<link name="l0"/>'] + [f'<link name="l{i + 1}"/>' for i in range(len(TWISTED))]
    joints = []
    for i, (name, kind, xyz, rpy, axis) in enumerate(TWISTED):
        body = (f'<parent link="l{i}"/><child link="l{i + 1}"/>'
                f'<origin xyz="{" ".join(map(str, xyz))}" rpy="{" ".join(map(str, rpy))}"/>')
        if axis is not None:
            body += f'<axis xyz="{" ".join(map(str, axis))}"/>'
        if kind == 'revolute':
            body += '<limit lower="-3" upper="3" velocity="2" effort="9"/>'
        if kind == 'continuous':
            body += '<limit velocity="3" effort="9"/>'
        joints.append(f'<joint name="{name}" type="{kind}">{body}</joint>')
    branch = ('<link name="side"/><joint name="side_j" type="fixed"><parent link="l2"/>'
              '<child link="side"/></joint>')
    return f'<robot name="twisted">{"".join(links + joints)}{branch}{extra}</robot>'


def literal_fk(q):
    """Independent reference: URDF semantics written out, origin then turn about the axis."""
    def rot(axis, angle):
        k = np.asarray(axis, float) / np.linalg.norm(axis)
        skew = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew

    transform = np.eye(4)
    angles = iter(q)
    for _, kind, xyz, (r, p, y), axis in TWISTED:
        step = np.eye(4)
        step[:3, :3] = rot((0, 0, 1), y) @ rot((0, 1, 0), p) @ rot((1, 0, 0), r)
        step[:3, 3] = xyz
        transform = transform @ step
        if kind != 'fixed':
            turn = np.eye(4)
            turn[:3, :3] = rot(axis, next(angles))
            transform = transform @ turn
    return transform[:3, 3]


def numeric_jacobian(spec, q, eps=1e-6):
    cols = [(spec.fk(q + eps * e) - spec.fk(q - eps * e)) / (2 * eps) for e in np.eye(spec.dof)]
    return np.array(cols).T


def test_planar_fk_matches_hand_computation():
    spec = RobotSpec.from_urdf_string(PLANAR)
    assert spec.joint_names == ('shoulder', 'elbow')
    assert (spec.base_link, spec.ee_link) == ('base', 'tip')
    np.testing.assert_allclose(spec.lower, [-2, -2.5])
    np.testing.assert_allclose(spec.velocity_limit, [1.5, 2])
    np.testing.assert_allclose(spec.effort_limit, [10, 5])
    for q in ([0, 0], [np.pi / 2, 0], [0.3, -1.1], [-1.9, 2.4]):
        np.testing.assert_allclose(spec.fk(q), planar_fk(q), atol=1e-12)
    np.testing.assert_allclose(spec.link_positions([np.pi / 2, 0]),
                               [[0, 0, 0.1], [0, 0.3, 0.1], [0, 0.5, 0.1]], atol=1e-12)


def test_twisted_chain_matches_literal_urdf_product():
    spec = RobotSpec.from_urdf_string(twisted_urdf())
    assert spec.joint_names == ('j1', 'j2', 'j3', 'j4')
    assert spec.ee_link == 'l6'  # deeper than the side branch
    assert spec.lower[1] == -np.inf and spec.upper[1] == np.inf
    rng = np.random.default_rng(0)
    qs = rng.uniform(-3, 3, size=(20, 4))
    for q in qs:
        np.testing.assert_allclose(spec.fk(q), literal_fk(q), atol=1e-12)
    np.testing.assert_allclose(spec.fk_batch(qs), [literal_fk(q) for q in qs], atol=1e-12)


def test_ee_link_can_be_chosen():
    spec = RobotSpec.from_urdf_string(twisted_urdf(), ee_link='l3')
    assert spec.joint_names == ('j1', 'j2')
    np.testing.assert_allclose(spec.link_positions([0.4, -0.2])[-1], spec.fk([0.4, -0.2]))


@pytest.mark.parametrize('text', [PLANAR, twisted_urdf()])
def test_jacobian_matches_finite_differences(text):
    spec = RobotSpec.from_urdf_string(text)
    rng = np.random.default_rng(1)
    for q in rng.uniform(-2, 2, size=(10, spec.dof)):
        np.testing.assert_allclose(spec.jacobian(q), numeric_jacobian(spec, q), atol=1e-8)


def test_lever_arms_bound_the_jacobian():
    spec = RobotSpec.from_urdf_string(twisted_urdf())
    rng = np.random.default_rng(2)
    for q in rng.uniform(-3, 3, size=(50, 4)):
        assert np.all(np.linalg.norm(spec.jacobian(q), axis=0) <= spec.lever_arms + 1e-12)


def test_bad_configuration_shape_is_rejected():
    spec = RobotSpec.from_urdf_string(PLANAR)
    with pytest.raises(ValueError, match='shape'):
        spec.fk([0.0, 0.0, 0.0])


def ur5_dh_fk(q):
    """Compute standard DH forward kinematics with the UR5 parameters of reference/hardware.md."""
    d = [0.089159, 0, 0, 0.10915, 0.09465, 0.0823]
    a = [0, -0.425, -0.39225, 0, 0, 0]
    alpha = [np.pi / 2, 0, 0, np.pi / 2, -np.pi / 2, 0]
    transform = np.eye(4)
    for theta, di, ai, al in zip(q, d, a, alpha):
        ct, st, ca, sa = np.cos(theta), np.sin(theta), np.cos(al), np.sin(al)
        transform = transform @ np.array([[ct, -st * ca, st * sa, ai * ct],
                                          [st, ct * ca, -ct * sa, ai * st],
                                          [0, sa, ca, di], [0, 0, 0, 1]])
    return transform[:3, 3]


def test_ur5_urdf():
    spec = RobotSpec.from_urdf(urdf_path('ur5'))
    assert spec.joint_names == ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
                                'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint')
    assert spec.ee_link == 'tool0'
    np.testing.assert_allclose(spec.upper, 2 * np.pi)
    np.testing.assert_allclose(spec.lower, -2 * np.pi)
    np.testing.assert_allclose(spec.velocity_limit, np.pi)
    np.testing.assert_allclose(spec.effort_limit, [150, 150, 150, 28, 28, 28])
    rng = np.random.default_rng(3)
    for q in rng.uniform(-np.pi, np.pi, size=(20, 6)):
        np.testing.assert_allclose(spec.fk(q), ur5_dh_fk(q), atol=1e-9)


def test_dxl_urdf():
    spec = RobotSpec.from_urdf(urdf_path('dxl_arm'))
    assert spec.ee_link == 'ee_link'
    assert spec.dof == 3
    assert np.all(np.isfinite(spec.lower)) and np.all(spec.lower < 0) and np.all(spec.upper > 0)
    assert np.all(spec.velocity_limit > 0) and np.all(np.isfinite(spec.velocity_limit))
    q = np.array([0.3, -0.4, 0.5])
    np.testing.assert_allclose(spec.link_positions(q)[-1], spec.fk(q))
    np.testing.assert_allclose(spec.jacobian(q), numeric_jacobian(spec, q), atol=1e-8)


def _planar_with(old, new):
    assert old in PLANAR
    return PLANAR.replace(old, new, 1)


@pytest.mark.parametrize('text, message', [
    ('<robot', 'not valid XML'),
    ('<model name="x"/>', 'expected <robot>'),
    (_planar_with('<limit lower="-2" upper="2" velocity="1.5" effort="10"/>', ''),
     'needs a <limit>'),
    (_planar_with('velocity="1.5" ', ''), 'needs a "velocity"'),
    (_planar_with('upper="2"', 'upper="-3"'), 'lower < upper'),
    (_planar_with('upper="2"', 'upper="two"'), 'not a number'),
    (_planar_with('<axis xyz="0 0 1"/>', '<axis xyz="0 0 0"/>'), 'must not be zero'),
    (_planar_with('<origin xyz="0 0 0.1"/>', '<origin xyz="0 0.1"/>'), 'expected 3'),
    (_planar_with('<child link="lower"/>', '<child link="nowhere"/>'), 'unknown link'),
    (_planar_with('<parent link="base"/>', '<parent link="tip"/>'), 'loop|one root'),
    (_planar_with('type="revolute"', 'type="prismatic"'), 'type "prismatic"'),
    (_planar_with('<link name="tip"/>', '<link name="tip"/><link name="x"/>'), 'one root'),
    (_planar_with('<link name="tip"/>', '<link name="tip"/><link name="tip"/>'), 'duplicate'),
    (_planar_with('<parent link="upper"/><child link="lower"/>',
                  '<parent link="upper"/>'), 'needs <parent'),
])
def test_malformed_urdf_errors(text, message):
    with pytest.raises(URDFError, match=message):
        RobotSpec.from_urdf_string(text)


def test_ambiguous_and_unknown_end_effector():
    twin_leaves = PLANAR.replace(
        '</robot>', '<link name="tip2"/><joint name="t2" type="fixed"><parent link="lower"/>'
                    '<child link="tip2"/></joint></robot>')
    with pytest.raises(URDFError, match='ambiguous'):
        RobotSpec.from_urdf_string(twin_leaves)
    assert RobotSpec.from_urdf_string(twin_leaves, ee_link='tip2').ee_link == 'tip2'
    with pytest.raises(URDFError, match='not a link'):
        RobotSpec.from_urdf_string(PLANAR, ee_link='hand')
    with pytest.raises(URDFError, match='no actuated joint'):
        RobotSpec.from_urdf_string(PLANAR, ee_link='base')


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(URDFError, match='missing.urdf'):
        RobotSpec.from_urdf(tmp_path / 'missing.urdf')
    bad = tmp_path / 'bad.urdf'
    bad.write_text('<robot name="x"><link name="a"/></robot>')
    with pytest.raises(URDFError, match='bad.urdf.*no actuated joint'):
        RobotSpec.from_urdf(bad)
