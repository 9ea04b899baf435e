"""TRPO update speed, ours beside sb3-contrib's on the very same batch.

Both get the same 2048 samples (collected by sb3-contrib on Pendulum-v1), 64-64 tanh
networks, 10 CG iterations, damping 0.1, max KL 0.01, one torch thread. Before each timed
update both learners are put back to the same starting weights, so every repetition does
the same work. Timings alternate ours/theirs in pairs; the ratios are medians over pairs.

    python bench/update_speed.py [--pairs 30] [--quick]

Last line: policy_update_speedup=X full_update_speedup=Y
"""
import argparse
import copy
from pathlib import Path
import statistics
import sys
import time

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.trpo.agent import Agent  # noqa: E402
from trpo_robot.trpo.config import TRPOConfig  # noqa: E402
from trpo_robot.trpo.fisher import GaussNewtonFisher, kl_hessian_vector_product  # noqa: E402
from trpo_robot.trpo.networks import gaussian_log_prob  # noqa: E402
from trpo_robot.trpo.update import fit_value, policy_step  # noqa: E402

N_STEPS, CG_ITERS, DAMPING, MAX_KL = 2048, 10, 0.1, 0.01
VALUE_EPOCHS, VALUE_MINIBATCH = 10, 128
"""The value fit on both sides: sb3-contrib's n_critic_updates and batch_size defaults."""


def sb3_model():
    from sb3_contrib import TRPO
    model = TRPO('MlpPolicy', 'Pendulum-v1', n_steps=N_STEPS, cg_max_steps=CG_ITERS,
                 cg_damping=DAMPING, target_kl=MAX_KL, seed=0, device='cpu', verbose=0)
    _, callback = model._setup_learn(N_STEPS, None)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, N_STEPS)
    return model


def batch_from(model):
    rb = model.rollout_buffer
    obs = torch.as_tensor(rb.observations.reshape(N_STEPS, -1), dtype=torch.float32)
    act = torch.as_tensor(rb.actions.reshape(N_STEPS, -1), dtype=torch.float32)
    adv = torch.as_tensor(rb.advantages.reshape(-1), dtype=torch.float32)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ret = torch.as_tensor(rb.returns.reshape(-1), dtype=torch.float32)
    return obs, act, adv, ret


class Ours:
    def __init__(self, obs, act, adv, ret):
        self.cfg = TRPOConfig(max_kl=MAX_KL, cg_iters=CG_ITERS, damping=DAMPING,
                              value_epochs=VALUE_EPOCHS, value_minibatch=VALUE_MINIBATCH)
        self.agent = Agent(obs.shape[1], act.shape[1], self.cfg, seed=0)
        with torch.no_grad():
            self.logp = gaussian_log_prob(self.agent.pi(obs), self.agent.pi.log_std, act)
        self.data = (obs, act, adv, ret)
        self.start = copy.deepcopy((self.agent.pi.state_dict(), self.agent.v.state_dict(),
                                    self.agent.v_optim.state_dict()))

    def reset(self):
        pi, v, opt = copy.deepcopy(self.start)
        self.agent.pi.load_state_dict(pi)
        self.agent.v.load_state_dict(v)
        self.agent.v_optim.load_state_dict(opt)

    def update(self, full):
        obs, act, adv, ret = self.data
        result = policy_step(self.agent.pi, obs, act, self.logp, adv, self.cfg)
        if full:
            fit_value(self.agent.v, self.agent.v_optim, obs, ret, self.cfg)
        return result


class Theirs:
    def __init__(self, model):
        self.model = model
        self.start = copy.deepcopy(model.policy.state_dict())
        self.opt_start = copy.deepcopy(model.policy.optimizer.state_dict())

    def reset(self):
        self.model.policy.load_state_dict(copy.deepcopy(self.start))
        self.model.policy.optimizer.load_state_dict(copy.deepcopy(self.opt_start))

    def update(self, full):
        self.model.n_critic_updates = VALUE_EPOCHS if full else 0
        self.model.train()


def timed(learner, full):
    learner.reset()
    t0 = time.perf_counter()
    learner.update(full)
    return time.perf_counter() - t0


def fvp_cost(obs, pairs):
    """Per-product cost of the Gauss-Newton FVP against double backprop of the KL."""
    agent = Agent(obs.shape[1], 1, TRPOConfig(), seed=0)
    v = torch.randn(sum(p.numel() for p in agent.pi.parameters()))
    gn = GaussNewtonFisher(agent.pi, obs, DAMPING)
    db = kl_hessian_vector_product(agent.pi, obs, DAMPING)
    err = (gn(v) - db(v)).abs().max().item()
    ratios = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        for _ in range(10):
            db(v)
        t1 = time.perf_counter()
        for _ in range(10):
            gn(v)
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios), err, (t2 - t1) / 10


QUICK = {'pairs': 3}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--pairs', type=int, default=30)
    return record.add_quick(parser)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    run = record.Run('update_speed', args.quick, argv)
    torch.set_num_threads(1)
    model = sb3_model()
    batch = batch_from(model)
    ours, theirs = Ours(*batch), Theirs(model)
    for learner in (ours, theirs):  # warm-up
        timed(learner, True)
    rows = {}
    for full in (False, True):
        pairs = [(timed(ours, full), timed(theirs, full)) for _ in range(args.pairs)]
        rows[full] = (statistics.median(o for o, _ in pairs),
                      statistics.median(t for _, t in pairs),
                      statistics.median(t / o for o, t in pairs))
    fvp_ratio, fvp_err, fvp_time = fvp_cost(batch[0], args.pairs)
    print('| update on 2048 samples | ours (ms) | sb3-contrib 2.9.2 (ms) | speedup |')
    print('|---|---|---|---|')
    for full, name in ((False, 'policy step (CG + line search)'),
                       (True, 'full update (policy + value fit)')):
        o, t, r = rows[full]
        print(f'| {name} | {1e3 * o:.1f} | {1e3 * t:.1f} | {r:.2f}x |')
    print(f'\nFisher-vector product: Gauss-Newton {1e6 * fvp_time:.0f} us per product, '
          f'{fvp_ratio:.2f}x cheaper than double backprop of the KL (max abs diff '
          f'{fvp_err:.1e})')
    print(f'policy_update_speedup={rows[False][2]:.2f} full_update_speedup={rows[True][2]:.2f}')
    run.write(dict(pairs=args.pairs, samples=N_STEPS,
                   policy_step_ms=dict(ours=1e3 * rows[False][0], sb3=1e3 * rows[False][1]),
                   full_update_ms=dict(ours=1e3 * rows[True][0], sb3=1e3 * rows[True][1]),
                   policy_update_speedup=rows[False][2], full_update_speedup=rows[True][2],
                   fvp_us=1e6 * fvp_time, fvp_speedup_vs_double_backprop=fvp_ratio,
                   fvp_max_abs_diff=fvp_err))


if __name__ == '__main__':
    main()
