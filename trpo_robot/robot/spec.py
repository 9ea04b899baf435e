"""Kinematics and limits of an arm, read from its URDF (the single source of both).

Pure numpy: the shield evaluates the chain every driver period, in any process, on any
machine, so nothing here may need mujoco or ROS.

The chain is stored as ``n + 1`` constant transforms ``D_0 .. D_n`` interleaved with
rotations about z: ``T_ee(q) = D_0 Rz(q_0) D_1 Rz(q_1) ... Rz(q_{n-1}) D_n``. Fixed joints
and each joint's axis direction are folded into the constants once, at load time, so a
configuration costs n cos/sin pairs and a few batched 4x4 products.
"""
from dataclasses import dataclass, field
from pathlib import Path
import xml.etree.ElementTree as ET

import numpy as np

_ACTUATED = ('revolute', 'continuous')
_SUPPORTED = _ACTUATED + ('fixed',)


class URDFError(ValueError):
    """The URDF cannot describe a chain this package can drive; the message says why."""


@dataclass(frozen=True)
class _Joint:
    name: str
    kind: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray
    lower: float
    upper: float
    velocity: float
    effort: float
    mimic: bool


# ---------------------------------------------------------------- small transform helpers

def _rpy_to_matrix(roll, pitch, yaw):
    """URDF convention: fixed-axis X, then Y, then Z, i.e. R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def _homogeneous(rotation=None, translation=None):
    out = np.eye(4)
    if rotation is not None:
        out[:3, :3] = rotation
    if translation is not None:
        out[:3, 3] = translation
    return out


def _z_onto(axis):
    """Return a rotation taking +z onto ``axis``: a turn about ``axis`` becomes one about z."""
    z = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


# ---------------------------------------------------------------------- URDF parsing

def _floats(text, count, where):
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise URDFError(f'{where}: "{text}" is not a list of numbers') from None
    if len(values) != count or not np.all(np.isfinite(values)):
        raise URDFError(f'{where}: expected {count} finite numbers, got "{text}"')
    return np.array(values)


def _attr_float(element, name, where, default=None):
    text = element.get(name)
    if text is None:
        if default is None:
            raise URDFError(f'{where}: <limit> needs a "{name}" attribute')
        return default
    try:
        return float(text)
    except ValueError:
        raise URDFError(f'{where}: {name}="{text}" is not a number') from None


def _parse_origin(joint_el, where):
    origin_el = joint_el.find('origin')
    if origin_el is None:
        return np.eye(4)
    xyz = _floats(origin_el.get('xyz', '0 0 0'), 3, f'{where} <origin xyz>')
    rpy = _floats(origin_el.get('rpy', '0 0 0'), 3, f'{where} <origin rpy>')
    return _homogeneous(_rpy_to_matrix(*rpy), xyz)


def _parse_axis(joint_el, where):
    axis_el = joint_el.find('axis')
    axis = np.array([1.0, 0.0, 0.0]) if axis_el is None else _floats(
        axis_el.get('xyz', '1 0 0'), 3, f'{where} <axis xyz>')
    norm = np.linalg.norm(axis)
    if norm < 1e-9:
        raise URDFError(f'{where}: <axis xyz> must not be zero')
    return axis / norm


def _parse_limits(joint_el, kind, where):
    """(lower, upper, velocity, effort); unknown values of a continuous joint are infinite."""
    limit_el = joint_el.find('limit')
    if kind == 'fixed':
        return 0.0, 0.0, 0.0, 0.0
    if limit_el is None:
        if kind == 'revolute':
            raise URDFError(f'{where}: a revolute joint needs a <limit> element')
        return -np.inf, np.inf, np.inf, np.inf
    velocity = _attr_float(limit_el, 'velocity', where, None if kind == 'revolute' else np.inf)
    effort = _attr_float(limit_el, 'effort', where, None if kind == 'revolute' else np.inf)
    if not velocity > 0 or not effort > 0:
        raise URDFError(f'{where}: velocity and effort limits must be positive, '
                        f'got velocity={velocity}, effort={effort}')
    if kind == 'continuous':
        return -np.inf, np.inf, velocity, effort
    lower = _attr_float(limit_el, 'lower', where, 0.0)
    upper = _attr_float(limit_el, 'upper', where, 0.0)
    if not (np.isfinite(lower) and np.isfinite(upper) and lower < upper):
        raise URDFError(f'{where}: needs finite limits with lower < upper, '
                        f'got lower={lower}, upper={upper}')
    return lower, upper, velocity, effort


def _parse_joint(joint_el):
    name = joint_el.get('name')
    if not name:
        raise URDFError('a <joint> has no name')
    where = f'joint "{name}"'
    kind = joint_el.get('type')
    parent_el, child_el = joint_el.find('parent'), joint_el.find('child')
    if parent_el is None or child_el is None or not parent_el.get('link') \
            or not child_el.get('link'):
        raise URDFError(f'{where}: needs <parent link=...> and <child link=...>')
    return _Joint(name, kind, parent_el.get('link'), child_el.get('link'),
                  _parse_origin(joint_el, where), _parse_axis(joint_el, where),
                  *_parse_limits(joint_el, kind, where),
                  mimic=joint_el.find('mimic') is not None)


def _read_robot(root):
    if root.tag != 'robot':
        raise URDFError(f'the root element is <{root.tag}>, expected <robot>')
    links = [el.get('name') for el in root.findall('link')]
    if not links or not all(links):
        raise URDFError('every <link> needs a name, and there must be at least one')
    if len(set(links)) != len(links):
        raise URDFError('duplicate link names')
    joints = [_parse_joint(el) for el in root.findall('joint')]
    if len({j.name for j in joints}) != len(joints):
        raise URDFError('duplicate joint names')
    known = set(links)
    by_child = {}
    for joint in joints:
        for link in (joint.parent, joint.child):
            if link not in known:
                raise URDFError(f'joint "{joint.name}" refers to unknown link "{link}"')
        if joint.child in by_child:
            raise URDFError(f'link "{joint.child}" is the child of two joints '
                            f'("{by_child[joint.child].name}", "{joint.name}")')
        by_child[joint.child] = joint
    return root.get('name', ''), links, by_child


def _path_to_root(link, by_child):
    path = []
    seen = {link}
    while link in by_child:
        joint = by_child[link]
        path.append(joint)
        link = joint.parent
        if link in seen:
            raise URDFError(f'the joints form a loop through link "{link}"')
        seen.add(link)
    return link, path[::-1]


def _select_chain(links, by_child, ee_link):
    roots = [link for link in links if link not in by_child]
    if len(roots) != 1:
        raise URDFError(f'expected one root link, found {len(roots)}: {roots}')
    if ee_link is None:
        depths = {link: len(_path_to_root(link, by_child)[1]) for link in links}
        deepest = max(depths.values())
        leaves = [link for link, depth in depths.items() if depth == deepest]
        if len(leaves) > 1:
            raise URDFError(f'end-effector link is ambiguous ({leaves} are equally deep); '
                            'pass ee_link')
        ee_link = leaves[0]
    elif ee_link not in links:
        raise URDFError(f'ee_link "{ee_link}" is not a link of this URDF')
    root, chain = _path_to_root(ee_link, by_child)
    if root != roots[0]:
        raise URDFError(f'ee_link "{ee_link}" is not connected to root "{roots[0]}"')
    for joint in chain:
        if joint.kind not in _SUPPORTED:
            raise URDFError(f'joint "{joint.name}" has type "{joint.kind}"; the chain may '
                            f'only hold {", ".join(_SUPPORTED)} joints')
        if joint.mimic and joint.kind in _ACTUATED:
            raise URDFError(f'joint "{joint.name}": mimic joints are not supported')
    if not any(joint.kind in _ACTUATED for joint in chain):
        raise URDFError(f'the chain from "{root}" to "{ee_link}" has no actuated joint')
    return root, ee_link, chain


def _fold_constants(chain):
    """Fold fixed joints and axis directions into the n + 1 constant transforms D_k."""
    constants = []
    pending = np.eye(4)
    for joint in chain:
        pending = pending @ joint.origin
        if joint.kind in _ACTUATED:
            onto = _homogeneous(_z_onto(joint.axis))
            constants.append(pending @ onto)
            pending = onto.T.copy()
    constants.append(pending)
    return np.array(constants)


# ------------------------------------------------------------------------- kinematics

class ChainKinematics:
    """Forward kinematics of one chain with preallocated buffers.

    Why a separate object: the shield evaluates the chain every driver period, and reusing
    buffers keeps that call allocation-light. Results are views into the buffers, valid
    until the next call; an instance must not be shared between threads.
    """

    def __init__(self, constants):
        self.n = len(constants) - 1
        n = self.n
        self._const = constants[:n]
        self._tail = constants[n][:, 3].copy()
        self._rot = np.zeros((n, 4, 4))
        self._rot[:, 2, 2] = 1.0
        self._rot[:, 3, 3] = 1.0
        self._cos_a, self._cos_b = self._rot[:, 0, 0], self._rot[:, 1, 1]
        self._sin_a, self._sin_b = self._rot[:, 1, 0], self._rot[:, 0, 1]
        size = 1 << n.bit_length()  # a power of two >= n + 1 for the pairwise reduction
        self._tree = np.tile(np.eye(4), (size, 1, 1))
        self._tree[n] = constants[n]
        self._local = self._tree[:n]
        self._prefix = np.empty((n, 4, 4))
        self._ee = np.empty(4)
        self._point = np.empty(4)
        self._origins = self._prefix[:, :3, 3]
        self._x_axes, self._y_axes = self._prefix[:, :3, 0], self._prefix[:, :3, 1]
        self._xy_axes = self._prefix[:, :3, :2]
        self._offset = np.empty((n, 3))
        self._in_frame = np.empty((n, 1, 2))
        self._jac_t = np.empty((n, 3))
        self._scratch = np.empty((n, 3))

    def _set_local(self, q):
        """local[k] = D_k Rz(q_k)."""
        np.cos(q, out=self._cos_a)
        self._cos_b[:] = self._cos_a
        np.sin(q, out=self._sin_a)
        np.negative(self._sin_a, out=self._sin_b)
        np.matmul(self._const, self._rot, out=self._local)

    def position(self, q):
        """Return the ee point (3,), reducing the chain pairwise: log2(n) batched products."""
        self._set_local(q)
        tree = self._tree
        while len(tree) > 2:
            tree = tree[0::2] @ tree[1::2]
        np.matmul(tree[0], tree[1][:, 3], out=self._point)
        return self._point[:3]

    def frames(self, q):
        """(prefix, ee): joint frames P_k = D_0 Rz(q_0) ... D_k Rz(q_k), and the ee point.

        Joint k turns about the z axis of P_k, through its origin (Rz leaves both alone).
        """
        self._set_local(q)
        prefix = self._prefix
        prefix[:] = self._local
        step = 1
        while step < self.n:  # Hillis-Steele scan: log2(n) batched products
            prefix[step:] = prefix[:-step] @ prefix[step:]
            step *= 2
        np.matmul(prefix[-1], self._tail, out=self._ee)
        return prefix, self._ee[:3]

    def jacobian(self):
        """J^T (n, 3) at the configuration of the last ``frames`` call.

        Row k is z_k x (p - o_k), the ee velocity per unit q_k. In frame k the ee sits at
        (x, y, z) and z x (x, y, z) = (-y, x, 0), so the row is x Y_k - y X_k with X_k, Y_k
        the frame's axes: one batched product instead of a cross product (np.cross alone
        costs ~13 us at this size). Transposed because callers scale rows by joint values.
        """
        np.subtract(self._ee[:3], self._origins, out=self._offset)
        np.matmul(self._offset[:, None, :], self._xy_axes, out=self._in_frame)
        np.multiply(self._y_axes, self._in_frame[:, :, 0], out=self._jac_t)
        np.multiply(self._x_axes, self._in_frame[:, :, 1], out=self._scratch)
        np.subtract(self._jac_t, self._scratch, out=self._jac_t)
        return self._jac_t

    def position_jacobian(self, q):
        """Return p (3,) and J^T (n, 3) at q."""
        _, p = self.frames(q)
        return p, self.jacobian()


def _as_configuration(q, n):
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (n,):
        raise ValueError(f'expected a configuration of shape ({n},), got {q.shape}')
    return q


@dataclass(frozen=True, eq=False)
class RobotSpec:
    """Names, limits and kinematics of the actuated chain from the base to the end effector.

    Arrays are read-only and in chain order; the kinematics methods are pure (they allocate
    their own buffers), so one spec can be shared by threads.
    """

    name: str
    """The URDF's robot name."""
    joint_names: tuple[str, ...]
    """Actuated (revolute or continuous) joints from the base to the end effector."""
    lower: np.ndarray
    """Position limits, rad; -inf for continuous joints."""
    upper: np.ndarray
    """Position limits, rad; +inf for continuous joints."""
    velocity_limit: np.ndarray
    """URDF velocity limits, rad/s; +inf where a continuous joint gives none."""
    effort_limit: np.ndarray
    """URDF effort limits, N m; +inf where a continuous joint gives none."""
    base_link: str
    """Root link of the URDF: positions are in its frame."""
    ee_link: str
    """Link whose origin is the end-effector point."""
    constants: np.ndarray = field(repr=False)
    """(n + 1, 4, 4) transforms D_k of ``T_ee = D_0 Rz(q_0) D_1 ... Rz(q_{n-1}) D_n``."""

    @classmethod
    def from_urdf(cls, path, ee_link=None):
        """Read a URDF file; ``ee_link`` defaults to the deepest link of the tree."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise URDFError(f'{path}: cannot read: {err.strerror}') from None
        try:
            return cls.from_urdf_string(text, ee_link)
        except URDFError as err:
            raise URDFError(f'{path}: {err}') from None

    @classmethod
    def from_urdf_string(cls, text, ee_link=None):
        """Read a URDF held in a string; see ``from_urdf``."""
        try:
            root = ET.fromstring(text)
        except ET.ParseError as err:
            raise URDFError(f'not valid XML: {err}') from None
        name, links, by_child = _read_robot(root)
        base, ee_link, chain = _select_chain(links, by_child, ee_link)
        actuated = [joint for joint in chain if joint.kind in _ACTUATED]

        def column(attr):
            values = np.array([getattr(joint, attr) for joint in actuated], dtype=np.float64)
            values.setflags(write=False)
            return values

        constants = _fold_constants(chain)
        constants.setflags(write=False)
        return cls(name, tuple(joint.name for joint in actuated), column('lower'),
                   column('upper'), column('velocity'), column('effort'), base, ee_link,
                   constants)

    @property
    def dof(self):
        """Number of actuated joints."""
        return len(self.joint_names)

    @property
    def lever_arms(self):
        """(n,) upper bounds on the distance from joint k's axis to the end effector, m.

        The sum of the link offsets beyond joint k, whatever the configuration. It bounds
        column k of the Jacobian and the curvature of the end-effector path, which lets the
        shield reason about whole braking trajectories without sampling them.
        """
        lengths = np.linalg.norm(self.constants[1:, :3, 3], axis=1)
        return np.cumsum(lengths[::-1])[::-1].copy()

    @property
    def reach(self):
        """Upper bound on the distance from the first joint axis to the end effector, m."""
        return float(self.lever_arms[0])

    def kinematics(self):
        """Return a fresh preallocated evaluator for hot loops (one per thread)."""
        return ChainKinematics(self.constants)

    def fk(self, q):
        """End-effector position (3,) in the base frame."""
        return self.kinematics().position(_as_configuration(q, self.dof)).copy()

    def link_positions(self, q):
        """(n + 1, 3): origin of every actuated joint in chain order, then the ee point.

        Enough to draw the arm or test links against the floor.
        """
        prefix, p = self.kinematics().frames(_as_configuration(q, self.dof))
        return np.vstack([prefix[:, :3, 3], p])

    def jacobian(self, q):
        """(3, n) position Jacobian d fk / d q, analytic from the joint axes."""
        _, jac_t = self.kinematics().position_jacobian(_as_configuration(q, self.dof))
        return jac_t.T.copy()

    def fk_batch(self, qs):
        """End-effector positions (m, 3) for configurations (m, n), one product per joint."""
        qs = np.asarray(qs, dtype=np.float64)
        if qs.ndim != 2 or qs.shape[1] != self.dof:
            raise ValueError(f'expected configurations of shape (m, {self.dof}), '
                             f'got {qs.shape}')
        c, s = np.cos(qs), np.sin(qs)
        rot = np.zeros(qs.shape + (4, 4))
        rot[..., 0, 0] = rot[..., 1, 1] = c
        rot[..., 1, 0], rot[..., 0, 1] = s, -s
        rot[..., 2, 2] = rot[..., 3, 3] = 1.0
        point = np.broadcast_to(self.constants[-1][:, 3], (len(qs), 4))
        for k in range(self.dof - 1, -1, -1):
            local = self.constants[k] @ rot[:, k]
            point = np.einsum('mij,mj->mi', local, point)
        return point[:, :3].copy()
