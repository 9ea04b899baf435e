"""Cost of recording episodes: one MCAP file per episode, written before it is sent.

A 4 s UR5 reacher_2d episode (100 agent steps of 40 ms, the actor's real wire blob) is
written with EpisodeStore.write (temporary file, fsync, rename, fsync of the folder) and
read back, --episodes times, into a folder on the disk of --dir (default: runs/, where
`trpo-robot learn` records). The write happens in the actor's control thread between
episodes, during the lifecycle's safe stop, so it costs reset time, not control ticks.

    python bench/episode_store.py --episodes 300 [--quick]

Prints a table and a JSON line; writes the JSON to bench/results/episode_store.jsonl.
"""
import argparse
import json
from pathlib import Path
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from trpo_robot.robot.tasks import get_task  # noqa: E402
from trpo_robot.ros.params import task_dims  # noqa: E402
from trpo_robot.store import EpisodeStore  # noqa: E402
from trpo_robot.trpo import wire  # noqa: E402
from trpo_robot.trpo.episode import Episode, Segment  # noqa: E402


def episode_blob(task_name='ur5_reacher_2d', seconds=4.0, seed=0):
    task = get_task(task_name)
    obs_dim, act_dim = task_dims(task)
    n = int(round(seconds / task.agent_dt))
    rng = np.random.default_rng(seed)
    o = rng.standard_normal((n, obs_dim)).astype(np.float32)
    seg = Segment(o, o.copy(), rng.standard_normal((n, act_dim)).astype(np.float32),
                  rng.standard_normal(n).astype(np.float32),
                  rng.standard_normal(n).astype(np.float32), o[-1], False, 3)
    return wire.encode_episode(Episode.of(seg, robot='ur5', task=task_name, actor='/actor_node',
                               sequence=0, extra={'episode_return': -1.0})), n


QUICK = {'episodes': 20}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=300)
    ap.add_argument('--dir', default='runs')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('episode_store', args.quick, argv)
    blob, steps = episode_blob()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix='bench_store_', dir=args.dir))
    try:
        store = EpisodeStore(root)
        writes, reads = [], []
        for seq in range(args.episodes):
            t0 = time.perf_counter()
            path = store.write(blob, actor='/actor_node', sequence=seq)
            t1 = time.perf_counter()
            assert store.read(path) == blob
            reads.append(time.perf_counter() - t1)
            writes.append(t1 - t0)
        size = path.stat().st_size
    finally:
        shutil.rmtree(root, ignore_errors=True)
    w, r = np.array(writes) * 1e3, np.array(reads) * 1e3
    result = dict(bench='episode_store', task='ur5_reacher_2d', steps=steps,
                  blob_bytes=len(blob), file_bytes=size, episodes=args.episodes,
                  write_ms_p50=float(np.percentile(w, 50)),
                  write_ms_p99=float(np.percentile(w, 99)), write_ms_max=float(w.max()),
                  read_ms_p50=float(np.percentile(r, 50)), dir=str(Path(args.dir).resolve()),
                  stamp=time.strftime('%Y-%m-%dT%H:%M:%S'))
    print(f'{steps}-step UR5 episode: blob {len(blob)} B, MCAP file {size} B')
    print(f'write (tmp, fsync, rename, dir fsync): p50 {result["write_ms_p50"]:.2f} ms, '
          f'p99 {result["write_ms_p99"]:.2f} ms, max {result["write_ms_max"]:.2f} ms; '
          f'read back p50 {result["read_ms_p50"]:.2f} ms ({args.episodes} episodes)')
    print(json.dumps(result))
    results.write(result)


if __name__ == '__main__':
    main()
