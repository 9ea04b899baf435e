"""The last step between any command and the arm.

Every velocity command (policy, teleop, scripted reset) passes ``SafetyShield.filter``
once per driver period, and what it returns is exactly what is sent. Guarantees, for any
sequence of commands including NaN, inf and absurd magnitudes:

- every sent command is finite, within the per-joint velocity limit, and differs from the
  previous sent command by at most ``max_acceleration * period`` per joint (the one
  configurable exception is a latched e-stop, see ``ShieldConfig.estop_deceleration``);
- a joint moving toward a position limit is slowed so that it can still stop, at
  ``max_acceleration``, before ``limit - position_margin``; moving away is always allowed;
- with a workspace box, the end effector's whole braking trajectory is kept in the box
  while it starts inside; outside the box the arm is driven back in.

These hold exactly for a kinematic arm (``q += sent * period``) and leave the margins for
tracking error on a real one. How each is kept is written next to the code that keeps it.
"""
from dataclasses import dataclass, fields, replace
import enum
import time

import numpy as np

from trpo_robot.robot.backend import JointState
from trpo_robot.robot.spec import RobotSpec


class Intervention(enum.IntFlag):
    """Why a sent command differs from the requested one; several can apply at once."""

    NONE = 0
    NON_FINITE = 1
    """A NaN or inf in the command or the joint positions: braking at max_acceleration."""
    VELOCITY_CLIP = 2
    """A joint velocity was above its limit and was clipped."""
    ACCEL_LIMIT = 4
    """A joint velocity changed faster than max_acceleration allows."""
    POSITION_LIMIT = 8
    """A joint was slowed so that it can stop before its position limit."""
    WORKSPACE = 16
    """The command was replaced to keep the end effector in (or bring it back to) the box."""
    STALE_STATE = 32
    """The joint state was too old to act on: braking at max_acceleration."""
    ESTOP = 64
    """The latched e-stop is engaged: braking at estop_deceleration."""
    BAD_SHAPE = 128
    """The command or the state had the wrong shape or type: braking at max_acceleration."""


# Flags are combined as plain ints in the hot path: IntFlag arithmetic costs ~0.4 us a step.
_FLAGS = tuple(Intervention(i) for i in range(256))
_VELOCITY_CLIP = int(Intervention.VELOCITY_CLIP)
_POSITION_LIMIT = int(Intervention.POSITION_LIMIT)
_ACCEL_LIMIT = int(Intervention.ACCEL_LIMIT)
_WORKSPACE = int(Intervention.WORKSPACE)


def _as_tuple(value, name):
    """Store scalars as floats and sequences as tuples so that the config stays hashable."""
    if value is None or np.isscalar(value):
        return None if value is None else float(value)
    values = tuple(float(v) for v in np.asarray(value, dtype=np.float64).ravel())
    if not values:
        raise ValueError(f'ShieldConfig.{name} must not be empty')
    return values


@dataclass(frozen=True)
class ShieldConfig:
    """Limits the shield enforces on top of the URDF's.

    Fields that take 'scalar or per joint' accept a float for all joints or one value per
    actuated joint in chain order.
    """

    velocity_scale: float = 0.5
    """Fraction of each URDF velocity limit that may be commanded, in (0, 1].

    The URDF holds the hardware maximum (UR5: pi rad/s); learning explores with bang-bang
    actions, so start at 0.1-0.5 and raise it only once the task needs the speed.
    """
    max_velocity: float | tuple[float, ...] | None = None
    """Absolute cap, rad/s, scalar or per joint, applied after velocity_scale; None: no cap.

    SenseAct's UR reacher tasks use 0.3 rad/s: slow enough that a person can step in.
    """
    max_acceleration: float | tuple[float, ...] = 2.0
    """Largest change of commanded velocity per second, rad/s^2, scalar or per joint.

    Also the deceleration assumed when braking before position limits and the workspace
    wall, so a smaller value makes the arm start braking earlier. Typical 1-5 rad/s^2 for
    a UR5, 5-20 for small Dynamixel arms.
    """
    position_margin: float = 0.05
    """Distance kept from each URDF position limit, rad.

    Absorbs tracking error between the commanded and the real motion; 0.02-0.1 rad.
    """
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner (x, y, z) of the allowed end-effector box in the base frame, m.

    None together with workspace_high disables the box (and its forward kinematics).
    """
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner (x, y, z) of the allowed end-effector box in the base frame, m."""
    stale_periods: float = 5.0
    """A joint state older than this many driver periods stops the arm.

    UR's robot_receive_timeout is 40 ms, five periods at 125 Hz; below 2 the normal jitter
    of /joint_states causes false stops.
    """
    workspace_gain: float = 2.0
    """Speed of the drive back into the box per metre of error, 1/s.

    Higher returns faster but the result is clipped by the velocity and acceleration
    limits anyway; 1-5 is typical.
    """
    workspace_inset: float = 0.01
    """How far inside the box the drive-back aims, m.

    Aiming strictly inside makes the arm re-enter instead of creeping along the wall.
    """
    workspace_damping: float = 0.05
    """Damping of the least-squares inverse used to drive back, m.

    Keeps joint speeds bounded near singular configurations (e.g. an outstretched arm);
    0.01-0.1 m.
    """
    estop_deceleration: float | tuple[float, ...] | None = None
    """Deceleration of a latched e-stop, rad/s^2, scalar or per joint; None: max_acceleration.

    The one exception to the acceleration guarantee: a larger value stops sooner at the cost
    of a jerk. It must be at least max_acceleration so that the e-stop never stops later
    than the normal braking that position limits and the workspace rely on.
    """

    def __post_init__(self):
        for name in ('max_velocity', 'max_acceleration', 'estop_deceleration',
                     'workspace_low', 'workspace_high'):
            object.__setattr__(self, name, _as_tuple(getattr(self, name), name))
        self._check_positive('velocity_scale', 'max_velocity', 'max_acceleration',
                             'stale_periods', 'workspace_gain', 'workspace_damping',
                             'estop_deceleration')
        if not 0.0 < self.velocity_scale <= 1.0:
            raise ValueError(f'ShieldConfig.velocity_scale must be in (0, 1], '
                             f'got {self.velocity_scale}')
        if not (np.isfinite(self.position_margin) and self.position_margin >= 0.0):
            raise ValueError('ShieldConfig.position_margin must be finite and >= 0')
        if not (np.isfinite(self.workspace_inset) and self.workspace_inset >= 0.0):
            raise ValueError('ShieldConfig.workspace_inset must be finite and >= 0')
        self._check_box()

    def _check_positive(self, *names):
        for name in names:
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value) & (np.asarray(value) > 0)):
                raise ValueError(f'ShieldConfig.{name} must be finite and > 0, got {value}')

    def _check_box(self):
        low, high = self.workspace_low, self.workspace_high
        if (low is None) != (high is None):
            raise ValueError('ShieldConfig: give both workspace_low and workspace_high, '
                             'or neither')
        if low is None:
            return
        if len(low) != 3 or len(high) != 3:
            raise ValueError('ShieldConfig.workspace_low/high must have 3 values (x, y, z)')
        if not all(np.isfinite(low + high)) or not all(a < b for a, b in zip(low, high)):
            raise ValueError(f'ShieldConfig: workspace box must be finite with low < high, '
                             f'got {low} and {high}')

    def as_dict(self):
        """Plain values, e.g. to log or to publish as diagnostics."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _per_joint(value, n, name):
    out = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f'ShieldConfig.{name} has {out.size} values for {n} joints')
    return out.copy()


class _Latch:
    """The e-stop latch of one arm, shared by every period's view of its shield (a
    mutable holder, so that a view sees an e-stop engaged through another at once)."""

    __slots__ = ('reason',)

    def __init__(self):
        self.reason = None


class SafetyShield:
    """Filters joint velocity commands so that only safe ones reach the arm.

    Stateful: it remembers the last sent command (the acceleration limit is relative to it)
    and the latched e-stop. ``filter`` and ``reset`` belong to one control loop (they share
    buffers); ``engage_estop`` may be called from any thread and takes effect at the next
    ``filter``. One arm has one shield: a loop of another period (the lifecycle ticking
    every driver period beside the agent's steps) uses ``at_period``, which shares the
    latch and the last sent command instead of keeping a second copy in step.
    """

    def __init__(self, spec: RobotSpec, config: ShieldConfig, period: float,
                 clock=time.monotonic):
        if not (np.isfinite(period) and period > 0):
            raise ValueError(f'period must be finite and > 0, got {period}')
        self.spec = spec
        self.config = config
        self.period = float(period)
        self._clock = clock
        self._n = spec.dof
        self._init_joint_limits(spec, config)
        self._init_workspace(spec, config)
        self._last = np.zeros(self._n)
        self._v = np.empty(self._n)
        self._tmp = np.empty(self._n)
        self._spare = np.empty(self._n)
        self._clipped = np.empty(self._n)
        self._braked = np.empty(self._n)
        self._zeros = np.zeros(self._n)
        self._window = np.empty((2, self._n))
        self._latch = _Latch()
        self._views = {self.period: self}

    # ------------------------------------------------------------------ construction

    def _init_joint_limits(self, spec, config):
        n, dt = self._n, self.period
        vmax = config.velocity_scale * spec.velocity_limit
        if config.max_velocity is not None:
            vmax = np.minimum(vmax, _per_joint(config.max_velocity, n, 'max_velocity'))
        for name, limit in zip(spec.joint_names, vmax):
            if not np.isfinite(limit):
                raise ValueError(f'joint "{name}" has no velocity limit in the URDF; '
                                 'set ShieldConfig.max_velocity')
        accel = _per_joint(config.max_acceleration, n, 'max_acceleration')
        estop = accel if config.estop_deceleration is None else \
            _per_joint(config.estop_deceleration, n, 'estop_deceleration')
        if np.any(estop < accel):
            raise ValueError('ShieldConfig.estop_deceleration must be >= max_acceleration')
        lower = spec.lower + config.position_margin
        upper = spec.upper - config.position_margin
        for name, lo, hi in zip(spec.joint_names, lower, upper):
            if not lo < hi:
                raise ValueError(f'joint "{name}": position_margin '
                                 f'{config.position_margin} leaves no room between limits')
        self.velocity_limit = vmax
        self.acceleration_limit = accel
        self.soft_lower, self.soft_upper = lower, upper
        self._vmax, self._neg_vmax = vmax, -vmax
        self._dv = accel * dt
        self._estop_dv = estop * dt
        self._stale_after = config.stale_periods * dt
        self._half_over_a = 0.5 / accel
        # Braking window, see _position_window: the radicand (a dt)^2 + 2 a d is affine in q.
        self._sign = np.array([[1.0], [-1.0]])
        self._radicand_slope = 2.0 * accel * self._sign
        self._radicand_at_zero = self._dv ** 2 + 2.0 * accel * np.array([upper, -lower])
        self._adt = np.array([self._dv, self._dv])
        self._adt_sq = self._adt ** 2
        # Farther than one full stop (vmax dt + vmax^2 / 2a) from both soft limits, the
        # window cannot bind; continuous joints are always that far.
        finite = np.isfinite(lower) & np.isfinite(upper)
        self._centre = 0.5 * (np.where(finite, lower, 0.0) + np.where(finite, upper, 0.0))
        stop = vmax * dt + vmax * vmax * self._half_over_a
        self._free_radius = np.where(finite, 0.5 * (upper - lower) - stop, np.inf)

    def _init_workspace(self, spec, config):
        self._box_lo = self._box_hi = None
        if config.workspace_low is None:
            return
        self._box_lo = np.array(config.workspace_low)
        self._box_hi = np.array(config.workspace_high)
        self._box_corners = config.workspace_low + config.workspace_high
        inset = np.minimum(config.workspace_inset, 0.25 * (self._box_hi - self._box_lo))
        self._aim_lo, self._aim_hi = self._box_lo + inset, self._box_hi - inset
        self._kin = spec.kinematics()
        self._levers = spec.lever_arms
        self._root_levers = np.sqrt(self._levers)
        self._damping_sq = config.workspace_damping ** 2
        self._anchor_q = np.zeros(self._n)
        self._anchor_clearance = -np.inf  # no anchor yet: the first call computes one
        self._stop = np.empty(self._n)
        self._abs_stop = np.empty(self._n)
        self._abs_jac_t = np.empty((self._n, 3))

    # ------------------------------------------------------------------ public API

    @property
    def estopped(self):
        """True while the e-stop is latched; only ``release_estop`` clears it."""
        return self._latch.reason is not None

    @property
    def estop_reason(self):
        """Why the e-stop was first engaged, or None."""
        return self._latch.reason

    @property
    def last_sent(self):
        """The last command returned by ``filter`` (a copy)."""
        return self._last.copy()

    def engage_estop(self, reason='unspecified'):
        """Latch the e-stop: every call brakes to rest until ``release_estop``.

        The first reason is kept, since later ones are usually consequences of it.
        """
        if self._latch.reason is None:
            self._latch.reason = str(reason)

    def release_estop(self):
        """Unlatch the e-stop; an explicit operator action, never automatic."""
        self._latch.reason = None

    def reset(self, state: JointState | None = None):
        """Forget the last sent command, e.g. after a teleport in simulation.

        Without a state the arm is assumed at rest; with one, the acceleration limit starts
        from the measured velocity (clipped to the velocity limit).
        """
        self._last[:] = 0.0
        if state is not None:
            self.continue_from(state.velocity)

    def continue_from(self, command):
        """Take ``command`` (clipped to the velocity limit) as the last one sent, e.g. the
        agent's last command when another loop takes the arm over; a command of the wrong
        shape or not finite counts as rest."""
        command = np.asarray(command, dtype=np.float64)
        self._last[:] = 0.0
        if command.shape == (self._n,) and np.all(np.isfinite(command)):
            np.clip(command, self._neg_vmax, self._vmax, out=self._last)

    def at_period(self, period):
        """This shield for a loop of another period: the same limits, e-stop latch and last
        sent command, with ``period``'s acceleration step and braking distances; the
        staleness allowance stays the same in seconds. Views are made once per period."""
        period = float(period)
        view = self._views.get(period)
        if view is None:
            ratio = self.period / period
            config = replace(self.config, stale_periods=self.config.stale_periods * ratio)
            view = SafetyShield(self.spec, config, period, clock=self._clock)
            view._latch, view._last, view._views = self._latch, self._last, self._views
            view._stale_after = self._stale_after  # exact, whatever the float ratio gives
            self._views[period] = view
        return view

    def filter(self, state: JointState, command):  # noqa: A003 - the documented API
        """Return ``(sent, interventions)``: the command to send now, and why it changed.

        ``sent`` is a new array; the caller must send exactly it. Rules, in order: latched
        e-stop, stale state, wrong shape, non-finite values (each brakes toward rest), then
        velocity clip, position braking, acceleration limit, and the workspace box. Only
        ``state.position`` and ``state.stamp`` are used: the acceleration limit is relative
        to the last sent command, which the driver tracks.
        """
        if self._latch.reason is not None:
            return self._brake(self._estop_dv, Intervention.ESTOP)
        try:
            age = self._clock() - state.stamp
        except (TypeError, AttributeError):
            return self._brake(self._dv, Intervention.BAD_SHAPE)
        if not -self._stale_after <= age <= self._stale_after:
            # NaN stamps land here too; a stamp far in the future means two clock domains.
            return self._brake(self._dv, Intervention.STALE_STATE)
        try:
            cmd = np.asarray(command, dtype=np.float64)
            q = np.asarray(state.position, dtype=np.float64)
        except (TypeError, ValueError):
            return self._brake(self._dv, Intervention.BAD_SHAPE)
        if cmd.shape != (self._n,) or q.shape != (self._n,):
            return self._brake(self._dv, Intervention.BAD_SHAPE)
        if not (self._all_finite(cmd) and self._all_finite(q)):
            return self._brake(self._dv, Intervention.NON_FINITE)
        window = self._position_window(q)
        flags = self._clip_joints(cmd, window)
        if self._box_lo is not None:
            flags |= self._keep_in_box(q, window)
        self._last[:] = self._v
        return self._v.copy(), _FLAGS[flags]

    # ------------------------------------------------------------------ the rules

    @staticmethod
    def _all_finite(x):
        return np.isfinite(x).all()

    def _brake(self, step, reason):
        """Move the last command toward zero by ``step`` per joint.

        Needs no state, so it is the answer to anything untrustworthy; its braking
        trajectory is part of the previous command's, which already respected the position
        limits and the box.
        """
        last = self._last
        np.minimum(0.0, last + step, out=self._tmp)
        np.maximum(self._tmp, last - step, out=last)
        return last.copy(), _FLAGS[reason]

    def _position_window(self, q):
        """Velocity bounds (2, n) from the position limits: row 0 upper, row 1 lower.

        None when every joint is too far from its limits for them to matter.

        A command v held for one period and then braked by a dt per period must stop
        before the soft limit at distance d: v dt + v^2 / (2a) <= d, i.e.
        v <= sqrt((a dt)^2 + 2 a d) - a dt. The discrete braking distance never exceeds
        v^2 / (2a), and braking from an admissible v by exactly a dt stays admissible, so the
        acceleration limit can always honour this window. Beyond a limit d = 0: the joint
        may stop or move away.
        """
        np.subtract(q, self._centre, out=self._tmp)
        np.abs(self._tmp, out=self._tmp)
        if not (self._tmp > self._free_radius).any():
            return None
        w = self._window
        np.multiply(self._radicand_slope, q, out=w)
        np.subtract(self._radicand_at_zero, w, out=w)
        np.maximum(w, self._adt_sq, out=w)
        np.sqrt(w, out=w)
        np.subtract(w, self._adt, out=w)
        np.multiply(w, self._sign, out=w)
        return w

    def _clip_joints(self, cmd, window):
        """Velocity clip, position window, then acceleration limit, into ``self._v``.

        The acceleration clip comes last and keeps the other two: the previous command lies
        inside the velocity limits, and a value within a dt of it lies inside the position
        window (see _position_window), so clipping toward it cannot leave either. Each
        stage has its own buffer so that the flags need only comparisons.
        """
        clipped, braked, v, last = self._clipped, self._braked, self._v, self._last
        np.minimum(cmd, self._vmax, out=clipped)
        np.maximum(clipped, self._neg_vmax, out=clipped)
        if window is None:
            braked = clipped
        else:
            np.minimum(clipped, window[0], out=braked)
            np.maximum(braked, window[1], out=braked)
        np.add(last, self._dv, out=v)
        np.minimum(braked, v, out=v)
        np.subtract(last, self._dv, out=self._tmp)
        np.maximum(v, self._tmp, out=v)
        if not (v != cmd).any():
            return 0  # nothing changed: the common case of a smooth command
        flags = _ACCEL_LIMIT if (v != braked).any() else 0
        if (clipped != cmd).any():
            flags |= _VELOCITY_CLIP
        if braked is not clipped and (braked != clipped).any():
            flags |= _POSITION_LIMIT
        return flags

    # ------------------------------------------------------------------ workspace box

    def _keep_in_box(self, q, window):
        """Keep the candidate in ``self._v`` if its braking trajectory stays in the box.

        Outside the box: a damped least-squares velocity toward the nearest point inside,
        whatever was asked. Inside, when the candidate would leave: the same drive-back
        aimed from where the candidate would stop, if that passes the check; otherwise
        plain braking, which is safe because its trajectory is part of the previous
        command's.
        """
        bend = self._stop_displacement()
        # |J_k| <= L_k in every configuration, so while joint k travels |s_k| the ee moves
        # at most sum_k L_k |s_k|, whatever the path.
        motion = self._abs_stop.dot(self._levers)
        if motion < self._clearance_bound(q):
            return 0
        _, p = self._kin.frames(q)  # frames, not just p: the Jacobian may follow
        x, y, z = p.tolist()
        lx, ly, lz, hx, hy, hz = self._box_corners
        clearance = min(x - lx, y - ly, z - lz, hx - x, hy - y, hz - z)
        self._anchor_q[:] = q
        self._anchor_clearance = clearance
        outside = clearance < 0.0
        if not outside and motion < clearance:
            return 0
        jac_t = self._kin.jacobian()
        if outside:
            aim_from = p
        elif self._fits(p, jac_t, bend):
            return 0
        else:
            aim_from = p + self._stop @ jac_t
        self._clip_joints(self._drive_back(aim_from, jac_t), window)
        if not outside and not self._fits(p, jac_t, self._stop_displacement()):
            self._clip_joints(self._zeros, window)
        return _WORKSPACE

    def _clearance_bound(self, q):
        """Return a lower bound on the ee's distance to the walls at q, without kinematics.

        The ee was ``_anchor_clearance`` from the walls at the configuration ``_anchor_q``
        where it was last computed, and moving the joints by d moves the ee by at most
        L . |d| (L the lever arms), so most calls away from the walls skip forward
        kinematics altogether.
        """
        offset = np.subtract(q, self._anchor_q, out=self._spare)
        np.abs(offset, out=offset)
        return self._anchor_clearance - offset.dot(self._levers)

    def _stop_displacement(self):
        """Joint travel s of the candidate held one period, then braked at a per period.

        s = v dt + v |v| / (2a), an upper bound of the discrete braking distance, goes to
        ``self._stop`` and |s| to ``self._abs_stop``. Returns the curvature allowance
        (sum_k sqrt(L_k) |s_k|)^2 / 2 with L_k the lever arms: d2p / dq_i dq_j is a lever
        no longer than L_max(i, j) = min(L_i, L_j) <= sqrt(L_i L_j).
        """
        np.abs(self._v, out=self._tmp)
        np.multiply(self._tmp, self._half_over_a, out=self._spare)
        np.add(self._spare, self.period, out=self._spare)
        np.multiply(self._v, self._spare, out=self._stop)
        np.multiply(self._tmp, self._spare, out=self._abs_stop)
        root = self._abs_stop.dot(self._root_levers)
        return 0.5 * root * root

    def _fits(self, p, jac_t, bend):
        """Box test of the candidate's whole braking trajectory, exact up to curvature.

        Each joint moves monotonically from 0 to s_k, so to first order the ee stays in
        the zonotope p + sum_k [0, 1] J_k s_k: centre p + J s / 2, half-width
        sum_k |J_k| |s_k| / 2 per axis, with J taken at the current configuration; the
        change of J along the way (curvature) adds at most ``bend``.
        """
        centre = (p + 0.5 * (self._stop @ jac_t)).tolist()
        width = (0.5 * (self._abs_stop @ np.abs(jac_t, out=self._abs_jac_t))).tolist()
        lx, ly, lz, hx, hy, hz = self._box_corners
        return (centre[0] - width[0] - bend >= lx and centre[0] + width[0] + bend <= hx
                and centre[1] - width[1] - bend >= ly and centre[1] + width[1] + bend <= hy
                and centre[2] - width[2] - bend >= lz and centre[2] + width[2] + bend <= hz)

    def _drive_back(self, aim_from, jac_t):
        """Joint velocity that moves ``aim_from`` toward the nearest point inside the box.

        Damped least squares, v = J^T (J J^T + lambda^2 I)^-1 w, keeps joint speeds bounded
        near singular configurations; the caller passes the result through the joint rules.
        """
        goal = np.minimum(np.maximum(aim_from, self._aim_lo), self._aim_hi)
        wanted = self.config.workspace_gain * (goal - aim_from)
        gram = jac_t.T @ jac_t
        gram.flat[::4] += self._damping_sq
        return jac_t @ _solve_spd3(gram.tolist(), wanted.tolist())


def _solve_spd3(m, b):
    """Solve a 3x3 symmetric positive definite system by cofactors (np.linalg: ~6 us)."""
    (a, d, e), (_, b2, f), (_, _, c) = m
    co_a, co_d, co_e = b2 * c - f * f, e * f - d * c, d * f - e * b2
    co_b, co_f, co_c = a * c - e * e, d * e - a * f, a * b2 - d * d
    det = a * co_a + d * co_d + e * co_e
    x, y, z = b
    return np.array([co_a * x + co_d * y + co_e * z,
                     co_d * x + co_b * y + co_f * z,
                     co_e * x + co_f * y + co_c * z]) / det
