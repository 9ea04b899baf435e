"""The Dynamixel graph over ROS at the bus rate (100 Hz), at real time: control timing and
the learning curve.

The servo emulator on a pty (Protocol 2.0, MuJoCo behind it) stands for the arm;
`trpo-robot learn --robot dxl --port PTY` runs dxl_driver_node (dynamixel-sdk), the command
guard, the actor and the learner, exactly as on hardware. A probe on the same domain keeps
the actor's diagnostics: lateness (joint_states in to command out) p50/p99/max, overruns
(bus cycles with no command), and the driver's bus figures. The run's progress.csv is the
learning curve; its picture is copied to docs/img/dxl_graph_learning.png.

    python bench/dxl_graph.py [--steps 20000] [--seed 0]
    python bench/dxl_graph.py --quick   # one learner batch; the picture stays out of docs/

Writes a JSON line to bench/results/dxl_graph.jsonl.
"""
import argparse
import json
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time

from trpo_robot.dxl_emulator import Emulator
from trpo_robot.ros import graph as G
from trpo_robot.ros.learn import read_progress
from trpo_robot.ros.monitor import Probe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402
from bench.guard_stop import _bus_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / 'docs' / 'img' / 'dxl_graph_learning.png'


QUICK = {'steps': 1}
"""A budget of one step: the learner stops after its first batch."""


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--steps', type=int, default=20000)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=None, help='results folder (default: a temporary one)')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('dxl_graph', args.quick, argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out = Path(args.out) if args.out else folder / 'run'
        emulator = Emulator(folder / 'ttyDXL', priority=60).start()
        domain = G.free_domain_id()
        probe = Probe(domain)
        for key in ('actor_node', 'dxl_driver_node', 'learner_node'):
            probe.watch(key)
        exe = Path(sys.executable).with_name('trpo-robot')
        cmd = [str(exe), 'learn', '--robot', 'dxl', '--port', str(emulator.link),
               '--dxl-config', str(_bus_file(folder)), '--steps', str(args.steps),
               '--seed', str(args.seed), '--out', str(out), '--domain-id', str(domain),
               '--validation-override']  # learning from scratch, on the emulator
        t0 = time.monotonic()
        try:
            code = subprocess.run(cmd, env=G.ros_env(domain)).returncode
        finally:
            control = probe.diag('actor_node', 'control') or {}
            driver = probe.diag('dxl_driver_node', 'driver') or {}
            probe.close()
            emulator.stop()
        rows = read_progress(out / 'progress.csv')
        if (out / 'learning_curve.png').exists() and not args.quick:
            shutil.copy(out / 'learning_curve.png', PICTURE)
    result = dict(
        bench='dxl_graph', steps=args.steps, seed=args.seed, exit_code=code,
        wall_s=time.monotonic() - t0, ticks=_num(control, 'ticks'),
        overruns=_num(control, 'overruns'),
        lateness_ms={k: _num(control, f'lateness_{k}_ms') for k in ('p50', 'p99', 'max')},
        aborted=_num(control, 'aborted'), driver={k: driver.get(k) for k in (
            'cycle_time_ms', 'retries', 'timeout_stops', 'watchdog_rearms') if k in driver},
        curve=[dict(steps=r['steps'], mean_return=r['mean_return'],
                    success_rate=r['success_rate']) for r in rows])
    print(json.dumps({k: v for k, v in result.items() if k != 'curve'}))
    results.write(result)
    return code


def _num(values, key):
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


if __name__ == '__main__':
    raise SystemExit(main())
