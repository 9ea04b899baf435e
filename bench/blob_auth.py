"""Cost of signing and checking blobs (trpo_robot/auth.py), against what they ride on.

UR5 reacher_2d sizes: the learner's policy blob (preset reacher, 64-64 networks) and a 4 s
episode blob (100 agent steps, bench/episode_store.py's). Measured alongside, in the same
process and under the same machine load, are what each signature is paid for:

- the learner: per update, one TRPO update on a 2048-step batch (21 such episodes);
  it checks those 21 episodes and signs one policy;
- the actor: per episode, recording it (EpisodeStore.write: tmp file, fsync, rename),
  and acting it (4 s of robot time); it signs the episode once, and checks one policy
  per update.

    python bench/blob_auth.py [--reps 2000] [--updates 3] [--writes 50] [--quick]

Prints a table and a JSON line; writes the JSON to bench/results/blob_auth.jsonl.
"""
import argparse
import json
import os
from pathlib import Path
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from bench.episode_store import episode_blob  # noqa: E402 - the sibling bench's episode

from trpo_robot import auth  # noqa: E402
from trpo_robot.ros.params import LearnerParams  # noqa: E402
from trpo_robot.store import EpisodeStore  # noqa: E402
from trpo_robot.trpo import wire  # noqa: E402
from trpo_robot.trpo.agent import Agent  # noqa: E402
from trpo_robot.trpo.learner import AsyncLearner  # noqa: E402

OBS, ACT = 12, 2


BEST = {}
"""The fastest of the rounds of each call: nearest to what an idle machine would see."""


def per_call(fn, reps, name=''):
    """Median over 10 rounds of the mean time of one call, s."""
    rounds = []
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(reps // 10 or 1):
            fn()
        rounds.append((time.perf_counter() - t0) / (reps // 10 or 1))
    BEST[name] = min(rounds)
    return float(np.median(rounds))


def update_seconds(agent, episode, n_updates):
    segment = wire.decode_episode(episode, OBS, ACT)[0]
    batch = [segment] * -(-agent.config.batch_steps // len(segment))
    times = []
    for _ in range(n_updates):
        t0 = time.perf_counter()
        agent.update(batch)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(batch)


def write_seconds(blob, n_writes):
    root = Path(tempfile.mkdtemp(prefix='bench_auth_', dir='runs'))
    try:
        store = EpisodeStore(root)
        times = []
        for seq in range(n_writes):
            t0 = time.perf_counter()
            store.write(blob, actor='/actor_node', sequence=seq)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))
    finally:
        shutil.rmtree(root, ignore_errors=True)


QUICK = {'reps': 200, 'updates': 1, 'writes': 5}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=2000)
    ap.add_argument('--updates', type=int, default=3)
    ap.add_argument('--writes', type=int, default=50)
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('blob_auth', args.quick, argv)
    torch.set_num_threads(1)  # as learner_node
    Path('runs').mkdir(exist_ok=True)
    ring = auth.Keyring(os.urandom(auth.KEY_BYTES))
    cfg = LearnerParams().trpo_config()
    agent = Agent(OBS, ACT, cfg, seed=0)
    policy = AsyncLearner(agent, robot='ur5', task='ur5_reacher_2d').policy_blob()
    episode, steps = episode_blob()
    signed_policy = ring.sign(policy, auth.POLICY)
    signed_episode = ring.sign(episode, auth.EPISODE)
    t = dict(
        sign_policy=per_call(lambda: ring.sign(policy, auth.POLICY), args.reps,
                             'sign_policy'),
        check_policy=per_call(lambda: ring.open(signed_policy, auth.POLICY), args.reps,
                              'check_policy'),
        sign_episode=per_call(lambda: ring.sign(episode, auth.EPISODE), args.reps,
                              'sign_episode'),
        check_episode=per_call(lambda: ring.open(signed_episode, auth.EPISODE), args.reps,
                               'check_episode'),
        decode_episode=per_call(lambda: wire.decode_episode(episode, OBS, ACT), 200,
                                'decode_episode'))
    update_s, episodes_per_update = update_seconds(agent, episode, args.updates)
    write_s = write_seconds(signed_episode, args.writes)
    episode_s = steps * 0.04
    learner = episodes_per_update * t['check_episode'] + t['sign_policy']
    result = dict(
        bench='blob_auth', policy_bytes=len(policy), episode_bytes=len(episode),
        episode_steps=steps, envelope_bytes=auth.ENVELOPE_BYTES,
        **{f'{k}_us': v * 1e6 for k, v in t.items()},
        **{f'{k}_us_best': v * 1e6 for k, v in BEST.items()},
        update_s=update_s, episodes_per_update=episodes_per_update,
        store_write_ms=write_s * 1e3,
        learner_share_of_update=learner / update_s,
        actor_share_of_recording=t['sign_episode'] / write_s,
        actor_share_of_episode=(t['sign_episode'] + t['check_policy'] / episodes_per_update)
        / episode_s,
        loadavg_1min=os.getloadavg()[0], cpus=os.cpu_count(),
        stamp=time.strftime('%Y-%m-%dT%H:%M:%S'))
    print(f'policy blob {len(policy)} B, episode blob {len(episode)} B ({steps} steps), '
          f'+{auth.ENVELOPE_BYTES} B envelope')
    print(f'sign policy {t["sign_policy"] * 1e6:.1f} us, check {t["check_policy"] * 1e6:.1f}'
          f' us; sign episode {t["sign_episode"] * 1e6:.1f} us, check '
          f'{t["check_episode"] * 1e6:.1f} us (decode {t["decode_episode"] * 1e6:.0f} us); '
          'medians; fastest rounds: ' + ', '.join(f'{k} {v * 1e6:.1f}' for k, v in BEST.items()))
    print(f'learner: {episodes_per_update} checks + 1 signature per update of '
          f'{update_s:.2f} s = {100 * result["learner_share_of_update"]:.4f} %')
    print(f'actor: 1 signature per recorded episode ({write_s * 1e3:.2f} ms write) = '
          f'{100 * result["actor_share_of_recording"]:.2f} %; of the {episode_s:g} s episode '
          f'{100 * result["actor_share_of_episode"]:.5f} %')
    print(f'load average {result["loadavg_1min"]:.1f} on {result["cpus"]} cpus')
    print(json.dumps(result))
    results.write(result)


if __name__ == '__main__':
    main()
