"""The actor's control loop in miniature, on a fast twin, for the lifecycle tests.

Outside RUN: read, ``lifecycle.tick``, send, one driver period; in RUN: ``env.step``. Every
command the lifecycle returns is kept, with the phase it was sent in, so that tests can
check the shield's limits over whole resets.
"""
import numpy as np

from trpo_robot.robot.lifecycle import EpisodeLifecycle, LifecycleConfig, Phase
from trpo_robot.twin.envs import make_twin_env


class TwinLoop:
    def __init__(self, task='ur5_reacher_2d', mapping=None, seed=0, freedrive=None, **config):
        self.env = make_twin_env(task, seed=seed)
        self.env.reset(seed=seed)
        self.backend = self.env.backend
        hooks = {} if freedrive is None else {'freedrive': freedrive}
        self.lc = EpisodeLifecycle.for_env(self.env, LifecycleConfig(**config),
                                           mapping=mapping, **hooks)
        self.sent, self.phases, self.states = [], [], []

    @property
    def shield(self):
        return self.lc.shield

    def read(self):
        return self.backend.read()

    def tick(self, axes=None, buttons=None):
        """One driver period; ``axes``/``buttons`` form a Joy reading stamped now."""
        joy = None if axes is None else (axes, buttons, self.backend.now())
        state = self.backend.read()
        command = self.lc.tick(state, joy)
        assert command is not None, 'tick in RUN'
        self.sent.append(command.copy())
        self.phases.append(self.lc.phase)
        self.states.append(state)
        self.backend.send_velocity(command)
        self.backend.advance(self.backend.period)
        return command

    def until(self, phase, max_ticks=2000, **joy):
        for _ in range(max_ticks):
            if self.lc.phase is phase:
                return
            self.tick(**joy)
        raise AssertionError(f'still {self.lc.phase} after {max_ticks} ticks, not {phase}')

    def ready(self):
        """Finish the startup reset."""
        self.until(Phase.READY)
        self.sent.clear()
        self.phases.clear()
        self.states.clear()

    def episode(self, action, steps):
        """READY -> RUN, ``steps`` agent steps of a constant action; returns the last
        command the agent's shield sent (where braking must start)."""
        self.lc.start_episode()
        for _ in range(steps):
            self.env.step(np.asarray(action, dtype=float))
        return self.env.shield.last_sent

    def assert_within_limits(self, commands, previous=None):
        """Every command within the velocity limit and a * dt of the one before."""
        commands = np.asarray(commands)
        limit = self.shield.velocity_limit + 1e-12
        assert np.all(np.abs(commands) <= limit), np.abs(commands).max(0)
        start = np.zeros(commands.shape[1]) if previous is None else previous
        steps = np.diff(np.vstack([start, commands]), axis=0)
        bound = self.shield.acceleration_limit * self.shield.period + 1e-12
        assert np.all(np.abs(steps) <= bound), np.abs(steps).max(0)
