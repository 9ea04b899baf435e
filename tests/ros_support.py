"""Bringing up the ROS graph in tests: node processes on a fresh domain, and a probe node.

Every graph gets its own free ROS_DOMAIN_ID with localhost-only discovery, so tests (and
other runs on this machine) never hear each other; every process is stopped in close().

The probe hears a topic only once its subscription is matched with the publisher, and a
volatile message sent before that is gone for it: a test waits for the match (matched())
or for a first message (heard()) before the action it judges, and reads a durable record
(the episode store, a transient_local topic) for anything that may have been sent earlier.

Test graphs run without SCHED_FIFO unless a test asks for it (robot_params realtime=True):
as root, each graph's twin and actor would put every one of their threads at FIFO, and on a
2-core machine running several graphs at once those threads starve every normal thread,
the probe's and the learner's included (see the report on issue #13).
"""
import os
from pathlib import Path
import signal
import time

from std_msgs.msg import String
from std_srvs.srv import Trigger

from trpo_robot.ros import graph as G
from trpo_robot.ros import params as P
from trpo_robot.ros import node_utils as U
from trpo_robot.ros.monitor import Probe
from trpo_robot.store import EpisodeStore

CONFIG = Path(__file__).resolve().parent.parent / 'config'


class Graph:
    """twin_node, guard_node, actor_node and learner_node as processes, from config/."""

    def __init__(self, folder, robot='dxl', robot_params=None, learner_params=None,
                 nodes=G.NODES, actor_args=None):
        self.folder = Path(folder)
        self.domain = G.free_domain_id()
        self.env = G.ros_env(self.domain)
        values = P.node_parameters([CONFIG / f'{robot}.yaml'], 'actor_node')
        # the test is the twin's operator: a hold stays until the test acts on it
        self.rp = P.build(P.RobotParams, {**values, 'episode_dir': str(self.folder / 'episodes'),
                                          'realtime': False, 'twin_hold_releases': 0,
                                          **(robot_params or {})})
        lvalues = P.node_parameters([CONFIG / 'learner.yaml'], 'learner_node')
        lvalues.update({'checkpoint_dir': str(self.folder / 'checkpoint'),
                        'log_dir': str(self.folder), **(learner_params or {})})
        self.lp = P.build(P.LearnerParams, lvalues)
        self.robot_yaml = P.write_param_file(self.folder / 'robot.yaml', P.to_ros(self.rp))
        self.learner_yaml = P.write_param_file(self.folder / 'learner.yaml',
                                               P.to_ros(self.lp))
        self.procs = {}
        self.probe = None
        self._actor_args = actor_args or {}
        try:
            # The probe's participant first: the nodes then discover it in their start-up
            # announcements instead of at their next periodic one.
            self.probe = Probe(self.domain)
            for node in nodes:
                self.start(node)
        except BaseException:
            self.close()
            raise

    def start(self, node):
        """Start (or start again, after a kill) one node process."""
        files = [self.robot_yaml] + ([self.learner_yaml] if node == 'learner_node' else [])
        # as the plan does for a twin graph: every node is handed use_sim_time
        params = {'use_sim_time': self.rp.sim_clock,
                  **(self._actor_args if node == 'actor_node' else {})}
        self.procs[node] = G.NodeProcess(node, files, self.env, self.folder / 'logs',
                                         params=params)

    def wait(self, predicate, timeout, what):
        """Poll, and fail with the nodes' log tails if it does not happen in time.

        what: the awaited event, or a function that says it (and what was seen instead)
        when the wait has failed."""
        try:
            return G.wait_for(predicate, timeout, 0.1, 'it')
        except TimeoutError:
            said = what() if callable(what) else what
            raise AssertionError(f'timed out after {timeout} s waiting for {said}\n'
                                 f'{self.logs()}') from None

    def matched(self, *keys, publishers=1, timeout=120):
        """Until each probe subscription in `keys` is matched with `publishers` publishers."""
        for key in keys:
            self.wait(lambda: self.probe.publishers(key) >= publishers, timeout,
                      f'the probe matched with {publishers} publisher(s) of {key!r} '
                      f'(now {self.probe.publishers(key)})')

    def heard(self, key, n=1, since=None, timeout=120):
        """Until the probe has heard `n` messages under `key` (received at or after the
        monotonic time `since`, if given); returns them."""
        def got():
            items = self.probe.got(key)
            items = items if since is None else [i for i in items if i[0] >= since]
            return items if len(items) >= n else None
        return self.wait(got, timeout, f'{n} message(s) under {key!r} heard by the probe')

    def logs(self):
        return '\n'.join(f'--- {name} (alive {p.alive()}):\n{p.tail(15)}'
                         for name, p in self.procs.items())

    def kill(self, node, sig):
        proc = self.procs[node]
        proc.send(sig)
        proc.proc.wait(10)

    def close(self):
        if self.probe is not None:
            self.probe.close()
            self.probe = None
        G.stop_all([self.procs.get(n) for n in ('actor_node', 'learner_node', 'guard_node',
                                                'twin_node')], timeout=15.0)


def actor_state(g) -> str:
    """The newest lifecycle phase on /actor_node/state (the probe must listen as 'state')."""
    got = g.probe.got('state')
    return got[-1][1].data if got else ''


def wait_actor_state(g, want, timeout=30):
    g.wait(lambda: actor_state(g) == want, timeout,
           f'actor state {want!r} (now {actor_state(g)!r})')


def call_trigger(g, service, node='/actor_node'):
    """Call a std_srvs/Trigger service of a node from the probe; its response."""
    client = g.probe.node.create_client(Trigger, f'{node}/{service}')
    assert client.wait_for_service(timeout_sec=10), service
    future = client.call_async(Trigger.Request())
    G.wait_for(future.done, 30, 0.01, f'{service} to answer')
    return future.result()


def fleet_files(folder, **robot):
    """Parameter files of the test fleets (tests/test_ros_fleet.py, test_ros_crosshost.py):
    dxl twins at 2x without SCHED_FIFO, an update every 150 steps. Returns rp, lp and the
    two files."""
    folder = Path(folder)
    values = P.node_parameters([CONFIG / 'dxl.yaml'], 'actor_node')
    rp = P.build(P.RobotParams, {**values, 'realtime': False, 'real_time_factor': 2.0,
                                 **robot})
    lvalues = P.node_parameters([CONFIG / 'learner.yaml'], 'learner_node')
    lp = P.build(P.LearnerParams, {**lvalues, 'checkpoint_dir': str(folder / 'checkpoint'),
                                   'log_dir': str(folder), 'trpo.batch_steps': 150})
    return (rp, lp, P.write_param_file(folder / 'robot.yaml', P.to_ros(rp)),
            P.write_param_file(folder / 'learner.yaml', P.to_ros(lp)))


def state_probe(domain, actors):
    """A probe hearing each actor's ~/state (its namespace/name, no leading slash), the
    lifecycle phase the actor publishes on every change; returned once matched, so that
    no change is missed from then on (a hold the actor ends within milliseconds)."""
    probe = Probe(domain, name='trpo_test_state')
    for actor in actors:
        probe.listen(actor, String, f'/{actor}/state', U.QOS_POLICY)
    for actor in actors:  # latched: heard at once when matched, and from then on each change
        G.wait_for(lambda key=actor: probe.got(key), 60, 0.05, f'{actor}/state')
    return probe


def stop_until_held(guard_pid, probe, actor):
    """SIGSTOP the guard until the actor says HOLD, then SIGCONT it: the fault lasts one
    hold, and the reset that follows meets a guard that relays again (a reset acted under
    a still silent guard would be held in turn). Returns when it began, on the wall clock
    of the episode files' times."""
    began, heard = time.time(), time.monotonic()
    os.kill(guard_pid, signal.SIGSTOP)
    try:
        G.wait_for(lambda: any(t > heard and msg.data == 'hold' for t, msg in probe.got(actor)),
                   120, 0.01, f'{actor} to hold the arm')
    finally:
        os.kill(guard_pid, signal.SIGCONT)
    return began


def episodes_after(folder, began, actor_prefix=''):
    """Episodes in the store ``folder`` recorded since ``began`` (wall clock), of the
    actors whose folder starts with ``actor_prefix`` (one arm of a fleet)."""
    return sum(1 for actor, _, path in EpisodeStore(folder).episodes()
               if actor.startswith(actor_prefix) and path.stat().st_mtime > began)
