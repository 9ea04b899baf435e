"""Start to first episode: `ros2 launch trpo_robot learn.launch.py` against `trpo-robot learn`.

Both entry points start the same graph (trpo_robot/ros/plan.py: twin, guard, actor and
learner processes) on the UR5 twin at the same real-time factor, in a domain of their own.
Each is timed from its command's start until the actor's first episode is on disk (the
actor writes an episode before it sends it: the learner's data has begun), then stopped
with SIGINT as a terminal would, and timed again to its exit. The rounds alternate the two
so that a slow minute of the host falls on both.

    python bench/start_time.py [--rounds 3] [--rtf 4] [--quick]

Needs the launch system (`make venv` installs it from ../shared/ros2-launch, a ROS machine
has its own). Writes one JSON line to bench/results/start_time.jsonl.
"""
import argparse
import json
import os
from pathlib import Path
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench` as a script too
from bench import record  # noqa: E402

ENTRY_POINTS = ('ros2_launch', 'trpo_robot_learn')
QUICK = {'rounds': 1}


def command(entry, out, rtf, domain):
    """The README's command of each entry point, into ``out``."""
    if entry == 'ros2_launch':
        ros2 = shutil.which('ros2', path=f'{Path(sys.executable).parent}{os.pathsep}'
                            f'{os.environ.get("PATH", "")}')
        if not ros2:
            raise SystemExit('ros2 is not on PATH: `make venv` installs the launch system '
                             'from ../shared/ros2-launch; a ROS machine sources its setup')
        return [ros2, 'launch', 'trpo_robot', 'learn.launch.py', 'robot:=ur5',
                'use_sim:=true', f'real_time_factor:={rtf:g}', f'out:={out}']
    return [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--rtf',
            f'{rtf:g}', '--out', str(out), '--domain-id', str(domain)]


def environment(domain, work):
    from trpo_robot.ros import graph as G
    env = G.ros_env(domain)  # localhost only, as learn runs
    prefixes = [sys.prefix] + [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep) if p and p != sys.prefix]
    env['AMENT_PREFIX_PATH'] = os.pathsep.join(prefixes)
    env['ROS_LOG_DIR'] = str(work / 'ros_log')
    return env


def first_episode(out):
    folder = out / 'episodes'
    return folder.is_dir() and any(folder.glob('*/*.mcap'))


def one_start(entry, rtf, limit):
    """Seconds to the first stored episode and from SIGINT to exit, and the exit code."""
    from trpo_robot.ros import graph as G
    work = Path(tempfile.mkdtemp(prefix=f'start_{entry}_'))
    out, domain = work / 'run', G.free_domain_id()
    log = open(work / 'output.txt', 'wb')
    t0 = time.monotonic()
    proc = subprocess.Popen(command(entry, out, rtf, domain), env=environment(domain, work),
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=work)
    try:
        while not first_episode(out):
            if proc.poll() is not None or time.monotonic() - t0 > limit:
                raise RuntimeError(f'{entry}: no episode (exit {proc.poll()}):\n'
                                   + (work / 'output.txt').read_text(errors='replace')[-3000:])
            time.sleep(0.05)
        started = time.monotonic() - t0
        t1 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(120)
        return {'entry': entry, 'first_episode_s': started,
                'stop_s': time.monotonic() - t1, 'exit_code': code}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def summarize(rows, rtf):
    out = {'rtf': rtf, 'rounds': len(rows) // len(ENTRY_POINTS), 'runs': rows}
    for entry in ENTRY_POINTS:
        mine = [r for r in rows if r['entry'] == entry]
        out[entry] = {key: statistics.median(r[key] for r in mine)
                      for key in ('first_episode_s', 'stop_s')}
        out[entry]['exit_codes'] = sorted({r['exit_code'] for r in mine})
    out['launch_over_learn'] = (out['ros2_launch']['first_episode_s']
                                / out['trpo_robot_learn']['first_episode_s'])
    return out


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--rtf', type=float, default=4.0,
                    help='real-time factor of the twin for both (learn\'s default here)')
    ap.add_argument('--limit', type=float, default=300.0,
                    help='wall seconds a start may take before the bench fails')
    return record.add_quick(ap)


def main(argv=None):
    args = record.parse(build_parser(), QUICK, argv)
    results = record.Run('start_time', args.quick, argv)
    rows = []
    for n in range(args.rounds):
        for entry in ENTRY_POINTS if n % 2 == 0 else ENTRY_POINTS[::-1]:
            row = one_start(entry, args.rtf, args.limit)
            print(json.dumps(row), flush=True)
            rows.append(row)
    figures = summarize(rows, args.rtf)
    print(json.dumps({k: v for k, v in figures.items() if k != 'runs'}), flush=True)
    results.write(figures)
    return 0


if __name__ == '__main__':
    sys.exit(main())
