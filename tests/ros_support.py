"""Bringing up the ROS graph in tests: node processes on a fresh domain, and a probe node.

Every graph gets its own free ROS_DOMAIN_ID with localhost-only discovery, so tests (and
other runs on this machine) never hear each other; every process is stopped in close().
"""
from pathlib import Path
import time

from std_srvs.srv import Trigger

from trpo_robot.ros import graph as G
from trpo_robot.ros import params as P
from trpo_robot.ros.monitor import Probe

CONFIG = Path(__file__).resolve().parent.parent / 'config'


class Graph:
    """twin_node, guard_node, actor_node and learner_node as processes, from config/."""

    def __init__(self, folder, robot='dxl', robot_params=None, learner_params=None,
                 nodes=G.NODES, actor_args=None):
        self.folder = Path(folder)
        self.domain = G.free_domain_id()
        self.env = G.ros_env(self.domain)
        values = P.node_parameters([CONFIG / f'{robot}.yaml'], 'actor_node')
        self.rp = P.build(P.RobotParams, {**values, 'episode_dir': str(self.folder / 'episodes'),
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
            for node in nodes:
                self.start(node)
            self.probe = Probe(self.domain)
        except BaseException:
            self.close()
            raise

    def start(self, node):
        """Start (or start again, after a kill) one node process."""
        files = [self.robot_yaml] + ([self.learner_yaml] if node == 'learner_node' else [])
        params = {'use_sim_time': True, **self._actor_args} if node == 'actor_node' else {}
        self.procs[node] = G.NodeProcess(node, files, self.env, self.folder / 'logs',
                                         params=params)

    def wait(self, predicate, timeout, what):
        """Poll, and fail with the nodes' log tails if it does not happen in time."""
        try:
            return G.wait_for(predicate, timeout, 0.1, what)
        except TimeoutError as e:
            raise AssertionError(f'{e}\n{self.logs()}') from None

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
    deadline = time.monotonic() + 10
    while not future.done():
        assert time.monotonic() < deadline, f'{service} did not answer'
        time.sleep(0.01)
    return future.result()
