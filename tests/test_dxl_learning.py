"""TRPO learns dxl_reacher through the whole hardware path: ArmEnv -> DynamixelBackend ->
dynamixel-sdk -> pty -> emulated servos -> MuJoCo twin, resets driven through the shield.

The emulator runs at 6x real time (the backend's clock is scaled to match), so 2400 agent
steps (96 s of arm time plus the driven resets) take about half a minute.
"""
from dataclasses import replace

from dxl_support import connected_backend, dxl_spec, running_emulator
import numpy as np
import torch

from trpo_robot.hw.bus import ServoFault
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.tasks import get_task
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import preset
from trpo_robot.trpo.trainer import train

RTF = 6.0
STEPS, BATCH = 2400, 400


def test_short_trpo_run_on_dxl_reacher_through_the_emulator_improves(tmp_path):
    torch.set_num_threads(1)
    with running_emulator(tmp_path / 'ttyDXL', real_time_factor=RTF,
                          baud=4_000_000) as emulator, \
            connected_backend(emulator, retries=10) as backend:
        # retries: a pty moves its bytes through a kernel worker of normal priority, which a
        # loaded 2-core machine now and then holds up for longer than three reply timeouts
        # (seen once in about 30 suite runs); this test is about learning, and the bus's
        # own timing is held in test_dxl_bus.py and bench/dxl_bus.py.
        env = ArmEnv(backend, get_task('dxl_reacher'), dxl_spec())
        config = replace(preset('reacher'), batch_steps=BATCH, max_kl=0.05, gamma=0.95,
                         gae_lambda=0.95)
        agent = Agent(env.observation_space.shape[0], env.action_space.shape[0], config, 0)
        returns = []
        try:
            train(env, agent, STEPS, seed=0, printer=lambda line: None,
                  on_update=lambda stats, batch: returns.append(np.mean(batch)))
        except ServoFault as e:  # what each side saw: a stalled emulator, or a slow host
            emulator_stats = {k: v for k, v in emulator.stats().items() if k != 'servos'}
            raise AssertionError(f'{e}; emulator {emulator_stats}; backend '
                                 f'{backend.stats()}') from e
        stats = backend.stats()
    # Untrained: about -5 per episode (the arm wanders); after six updates about -2 to 0.
    assert len(returns) == STEPS // BATCH
    assert np.mean(returns[-2:]) > returns[0] + 1.0, returns
    assert backend.fault is None and stats['cycles'] > STEPS * 4
