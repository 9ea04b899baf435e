"""Bringing the nodes up as processes without a ROS distribution (no launch, no ros2 CLI).

Used by `trpo-robot learn`, the graph tests and the benchmarks: the same executables a
launch file starts (python -m trpo_robot.ros.<node> --ros-args --params-file ...), each in
its own process and session, all on one ROS domain with discovery kept on this host so
that parallel runs never hear each other. No rclpy here.
"""
import ctypes
import os
from pathlib import Path
import random
import signal
import socket
import subprocess
import sys
import time

NODES = ('twin_node', 'guard_node', 'actor_node', 'learner_node')
PR_SET_PDEATHSIG = 1


PARTICIPANTS_CHECKED = 10


def _domain_in_use(domain: int) -> bool:
    """Is a DDS participant already using this domain on this host?

    Fast DDS and Cyclone bind the unicast discovery port of each participant exclusively:
    7400 + 250 * domain + 10 + 2 * participant id (the RTPS well-known port formula). The
    first few ids are checked, not only 0: a graph whose participant 0 has exited (a node
    killed in a test, the first one of a run to stop) is still on its domain.
    """
    for participant in range(PARTICIPANTS_CHECKED):
        port = 7400 + 250 * domain + 10 + 2 * participant
        for host in ('127.0.0.1', '0.0.0.0'):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    return True
    return False


def free_domain_id(rng=None, low=1, high=101) -> int:
    """A random ROS_DOMAIN_ID in [low, high] that no local participant uses (1..101 keeps
    every port below Linux's ephemeral range)."""
    rng = rng or random.SystemRandom()
    candidates = list(range(low, high + 1))
    rng.shuffle(candidates)
    for domain in candidates:
        if not _domain_in_use(domain):
            return domain
    raise RuntimeError(f'every ROS domain in {low}..{high} is in use on this host')


def ros_env(domain: int, base=None) -> dict:
    """Environment for a node process: its domain, localhost-only discovery, no buffering."""
    env = dict(os.environ if base is None else base)
    env['ROS_DOMAIN_ID'] = str(int(domain))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('ROS_LOCALHOST_ONLY', None)  # deprecated, and it conflicts with the above
    env.pop('ROS_STATIC_PEERS', None)
    env['PYTHONUNBUFFERED'] = '1'
    root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    return env


def _die_with_parent():
    """Child side of Popen: get SIGTERM when the parent dies, so that no node outlives a
    killed supervisor (Linux; elsewhere the supervisor's own cleanup must do)."""
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class NodeProcess:
    """One node executable as a child process with its log in a file."""

    def __init__(self, node, param_files, env, log_dir, *, params=None, name=None,
                 namespace=None, remaps=None, wrapper=()):
        """wrapper: argv that runs the node's command, e.g. ``ip netns exec host1`` (the
        cross-host test runs each "host" in its own network namespace)."""
        self.node = node
        self.name = name or node
        self.namespace = (namespace or '').strip('/')
        cmd = [*wrapper, sys.executable, '-m', f'trpo_robot.ros.{node}', '--ros-args']
        if name:
            cmd += ['-r', f'__node:={name}']
        if namespace:  # rcl takes only an absolute namespace in a remap rule
            cmd += ['-r', f'__ns:=/{namespace.strip("/")}']
        for src, dst in (remaps or {}).items():
            cmd += ['-r', f'{src}:={dst}']
        for path in param_files:
            cmd += ['--params-file', str(path)]
        for key, value in (params or {}).items():
            cmd += ['-p', f'{key}:={_ros_arg(value)}']
        self.cmd = cmd
        self.log_path = Path(log_dir) / f'{self.name}.log'
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)

    @classmethod
    def from_spec(cls, spec, env, log_dir, *, params=None, wrapper=()):
        """The process of a plan.NodeSpec; ``params`` override the spec's own."""
        return cls(spec.executable, spec.param_files, env, log_dir,
                   params={**spec.params, **(params or {})}, name=spec.name,
                   namespace=spec.namespace, remaps=spec.remaps, wrapper=wrapper)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=10.0, sig=signal.SIGINT) -> int:
        """Ask it to stop (SIGINT: stop the arm / write a checkpoint), kill after timeout."""
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        self._log.close()
        return self.proc.returncode

    def tail(self, lines=20) -> str:
        try:
            text = self.log_path.read_text(errors='replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])


def _ros_arg(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_ros_arg(v) for v in value) + ']'
    if isinstance(value, str):
        return value if value else "''"
    return repr(value)


def stop_all(processes, timeout=10.0):
    """Stop in the order given (actor first: it stops the arm; then the learner: it writes
    its checkpoint; the driver last)."""
    codes = {}
    for proc in processes:
        if proc is not None:
            key = f'{proc.namespace}/{proc.name}' if proc.namespace else proc.name
            codes[key] = proc.stop(timeout)
    return codes


def wait_for(predicate, timeout, interval=0.05, what='condition'):
    """Poll until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(interval)
