"""Episode transport through DDS: 4 s UR5 episodes (100 steps) from one process to another.

The publisher (this process) sends wire-encoded episodes on a reliable keep_last 32 topic,
as actor_node does; a subscriber process (as learner_node) takes each one, copies it out
of the message and decodes and validates it. Each run is paced at one rate; the highest
rate that arrives complete is what the link sustains (keep_last 32 drops the oldest unsent
sample when a reader falls further behind). Latency is the DDS source timestamp to the end
of decoding in the subscriber.
One actor makes one episode per 4 s of robot time (2 per second at 8x real time).

    python bench/ros_transport.py
    python bench/ros_transport.py --quick   # 100 episodes at 100 and 1000 per s

Writes a JSON line per rate to bench/results/ros_transport.jsonl.
"""
import argparse
import json
from pathlib import Path
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOPIC = '/bench/episodes'
OBS, ACT, STEPS = 12, 2, 100


def subscriber(n, out):
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from std_msgs.msg import UInt8MultiArray
    from trpo_robot.ros import node_utils as U
    from trpo_robot.trpo import wire
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('bench_episode_sink')
    rows = []

    def on_episode(msg, info):
        blob = bytes(msg.data)
        seg, meta = wire.decode_episode(blob, OBS, ACT)
        done = time.time()
        rows.append((meta['sequence'], done - info['source_timestamp'] * 1e-9,
                     time.monotonic()))
    node.create_subscription(UInt8MultiArray, TOPIC, on_episode, U.qos_episodes(32))
    deadline = time.monotonic() + 600
    while len(rows) < n and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.5)
        if rows and time.monotonic() - rows[-1][2] > 5.0:
            break  # the publisher is done and the rest was lost
    Path(out).write_text(json.dumps(rows))
    node.destroy_node()
    rclpy.shutdown()


def episodes(n):
    from trpo_robot.trpo import wire
    from trpo_robot.trpo.episode import Episode, Segment
    rng = np.random.default_rng(0)
    blobs = []
    for i in range(n):
        o = rng.standard_normal((STEPS, OBS)).astype(np.float32)
        seg = Segment(o, o * 2, rng.standard_normal((STEPS, ACT)).astype(np.float32),
                      rng.standard_normal(STEPS).astype(np.float32),
                      rng.standard_normal(STEPS).astype(np.float32), o[0], False, 3)
        blobs.append(wire.encode_episode(Episode.of(seg, robot='ur5', task='ur5_reacher_2d',
                                         actor='/bench', sequence=i,
                                         extra={'final_distance': 0.1, 'success': False})))
    return blobs


def run(n, rate, domain):
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from std_msgs.msg import UInt8MultiArray
    from trpo_robot.ros import graph as G
    from trpo_robot.ros import node_utils as U
    blobs = episodes(n)
    t0 = time.perf_counter()
    episodes(50)
    encode_ms = (time.perf_counter() - t0) / 50 * 1e3
    out = Path(f'/tmp/ros_transport_{domain}_{rate}.json')
    sink = subprocess.Popen([sys.executable, __file__, '--sink', str(n), str(out)],
                            env=G.ros_env(domain))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('bench_episode_source', context=ctx)
    pub = node.create_publisher(UInt8MultiArray, TOPIC, U.qos_episodes(32))
    try:
        G.wait_for(lambda: pub.get_subscription_count(), 30, what='the subscriber')
        time.sleep(0.5)
        t_start = time.monotonic()
        for i, blob in enumerate(blobs):
            pub.publish(U.blob_msg(blob))
            if rate:
                delay = t_start + (i + 1) / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        sent_s = time.monotonic() - t_start
        sink.wait(600)
    finally:
        if sink.poll() is None:
            sink.kill()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    rows = json.loads(out.read_text())
    out.unlink()
    lat = np.array([r[1] for r in rows]) * 1e3
    span = rows[-1][2] - t_start if rows else float('nan')
    return {'rate': rate, 'sent': n, 'received': len(rows),
            'blob_bytes': len(blobs[0]), 'encode_ms': encode_ms,
            'publish_s': sent_s, 'episodes_per_s': len(rows) / span,
            'MB_per_s': len(rows) * len(blobs[0]) / span / 1e6,
            'latency_ms': {'p50': float(np.percentile(lat, 50)),
                           'p99': float(np.percentile(lat, 99)), 'max': float(lat.max())},
            'decode_check': _decode_ms(blobs[0])}


def _decode_ms(blob):
    from trpo_robot.trpo import wire
    t0 = time.perf_counter()
    for _ in range(200):
        wire.decode_episode(blob, OBS, ACT)
    return (time.perf_counter() - t0) / 200 * 1e3


QUICK = {'episodes': 100, 'rates': [100.0, 1000.0]}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--episodes', type=int, default=2000, help='at most, per rate')
    ap.add_argument('--rates', type=float, nargs='+', default=[25, 100, 250, 500, 1000, 2000],
                    help='episodes/s, each paced for ~5 s')
    return record.add_quick(ap)


def main(argv=None):
    if len(sys.argv) > 1 and sys.argv[1] == '--sink':
        return subscriber(int(sys.argv[2]), sys.argv[3])
    args = record.parse(build_parser(), QUICK, argv)
    run_record = record.Run('ros_transport', args.quick, argv)
    from trpo_robot.ros import graph as G
    results = []
    for rate in args.rates:
        result = run(int(min(args.episodes, max(200, 5 * rate))), rate, G.free_domain_id())
        print(json.dumps(result), flush=True)
        results.append(result)
    run_record.write(*results)


if __name__ == '__main__':
    main()
