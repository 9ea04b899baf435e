"""The one place an arm's twin is stepped: its MuJoCo model and data, the commands on their
way to the velocity servos, and the mj_step loop.

``MujocoBackend`` (the twin behind the Backend contract) and ``EmulatorPhysics`` (the
joints behind the Dynamixel emulator's servos) both move their arm through an
``ArmStepper``, so the two can never step, delay or release the same arm differently.
"""
from collections import deque

import mujoco
import numpy as np

from trpo_robot.twin.model import (build_model, HOME_KEY, nominal_values, randomize,
                                   release_servos)
from trpo_robot.twin.randomization import latency_rng, model_rng, Randomization


class ArmStepper:
    """One arm's twin, stepped in whole physics steps of ``dt``.

    A command (joint velocities, rad/s) reaches the servos ``latency_steps`` physics steps
    after ``send``: the link is FIFO, and of two commands due in the same step the later
    wins. A command may be longer than the arm: the entries past its joints are held
    (``held``) for servos that have no joint in the twin, and delayed alike.
    """

    def __init__(self, robot: str, start_time: float = 0.0):
        self.model = build_model(robot)
        self.data = mujoco.MjData(self.model)
        self.nominal = nominal_values(self.model)
        """The compiled values randomization scales; every draw starts from these."""
        model = self.model
        self.joints = [int(model.actuator_trnid[i, 0]) for i in range(model.nu)]
        self.qadr = np.array([model.jnt_qposadr[j] for j in self.joints], int)
        self.dadr = np.array([model.jnt_dofadr[j] for j in self.joints], int)
        self.n = len(self.joints)
        self.dt = float(model.opt.timestep)
        self.kv = model.actuator_gainprm[:, 0].copy()
        """The servo gains as built, which a released servo gets back."""
        self.latency_steps = 0
        self.steps = 0
        """Physics steps taken; a command's due step counts on it."""
        self.held = np.zeros(self.n)
        """The command the servos hold now (as sent: may be longer than the arm)."""
        self._pending = deque()  # (physics step at which it takes effect, command)
        self.home(start_time)

    def home(self, start_time: float = 0.0) -> None:
        """Put the arm in its home keyframe at rest, at sim time ``start_time``."""
        mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key(HOME_KEY).id)
        self.data.time = start_time
        mujoco.mj_forward(self.model, self.data)

    def redraw(self, rand: Randomization | None, seed: int) -> tuple[dict, int]:
        """Scale masses, damping and friction from the nominal model with ``seed`` and draw
        the extra latency in driver periods: (factors, periods); ({}, 0) without ``rand``.
        The caller sets ``latency_steps``: what a period is differs between its users."""
        if rand is None:
            return {}, 0
        factors = randomize(self.model, self.nominal, rand, model_rng(seed))
        return factors, int(rand.draw_latency_periods(latency_rng(seed)))

    def send(self, command) -> None:
        """Queue ``command`` to reach the servos after the latency."""
        command = np.array(command, float)
        due = self.steps + self.latency_steps
        if self._pending:  # a FIFO link: a shorter latency drawn since never overtakes
            due = max(due, self._pending[-1][0])
        if self._pending and self._pending[-1][0] == due:
            self._pending[-1] = (due, command)  # two commands in one step: the last wins
        else:
            self._pending.append((due, command))
        self.apply_due()

    def hold(self, command) -> None:
        """Drop the commands in flight and hold ``command`` from now on, at once."""
        self._pending.clear()
        self._set(np.array(command, float))

    def drop_pending(self) -> None:
        self._pending.clear()

    def apply_due(self) -> None:
        """Let the commands due by now reach the servos."""
        while self._pending and self._pending[0][0] <= self.steps:
            self._set(self._pending.popleft()[1])

    def release(self, limp) -> None:
        """Let the servos of the ``limp`` joints go (a bool or one per joint) and give the
        others their gains back: see ``model.release_servos``."""
        release_servos(self.model, self.kv, limp)

    def run(self, steps: int) -> None:
        """Step ``steps`` physics steps in as few mj_step calls as the pending commands
        allow: Python per call, not per step, keeps a fast twin fast. A command due at the
        step reached is applied when stepping goes on (or by ``apply_due``)."""
        while steps > 0:
            self.apply_due()
            chunk = steps
            if self._pending:
                chunk = min(chunk, self._pending[0][0] - self.steps)
            mujoco.mj_step(self.model, self.data, chunk)
            self.steps += chunk
            steps -= chunk

    def place(self, joints, position, velocity) -> None:
        """Teleport the joints (indices into the arm's joints) to ``position`` moving at
        ``velocity``. The solver's warm start belongs to the state left behind, so it goes."""
        self.data.qpos[self.qadr[joints]] = position
        self.data.qvel[self.dadr[joints]] = velocity
        self.data.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def positions(self) -> np.ndarray:
        return self.data.qpos[self.qadr]

    def velocities(self) -> np.ndarray:
        return self.data.qvel[self.dadr]

    def efforts(self) -> np.ndarray:
        """What each servo exerts, N m (its force, within the URDF effort)."""
        return self.data.actuator_force.copy()

    def _set(self, command: np.ndarray) -> None:
        self.held = command
        k = min(len(command), self.n)
        self.data.ctrl[:k] = command[:k]
