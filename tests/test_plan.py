"""One definition of the graph (trpo_robot/ros/plan.py), read by the launch file and by
`trpo-robot learn`: the plan itself, then both entry points run side by side, each on its
own ROS domain, and the two live graphs compared node by node (names, parameters, topics).
"""
import os
from pathlib import Path
import subprocess
import sys

import pytest
from rcl_interfaces.msg import ParameterType
from rclpy.parameter_client import AsyncParameterClient

from launch_support import Launch, launch_env, needs_launch
from trpo_robot.paths import share_file
from trpo_robot.ros import graph as G
from trpo_robot.ros import params as P
from trpo_robot.ros import plan
from trpo_robot.ros.monitor import Probe

ROBOT_YAML = share_file('config', 'ur5.yaml')
LEARNER_YAML = share_file('config', 'learner.yaml')


def _by_fqn(specs):
    return {s.fqn: s for s in specs}


def test_one_arm_is_the_graph_it_has_always_been():
    specs = plan.learning_graph(ROBOT_YAML, LEARNER_YAML)
    assert [s.fqn for s in specs] == ['/twin_node', '/command_guard', '/learner_node',
                                      '/actor_node']
    learner = _by_fqn(specs)['/learner_node']
    assert learner.param_files == (str(ROBOT_YAML), str(LEARNER_YAML))
    assert learner.params['episode_topics'] == ['/actor_node/episodes']
    assert all(s.params['use_sim_time'] is True and not s.remaps for s in specs)
    assert all('seed' not in s.params for s in specs)  # the YAML's seed, untouched


def test_a_fleet_gives_each_arm_its_namespace_seed_and_clock_and_one_learner_all_episodes():
    specs = plan.learning_graph(ROBOT_YAML, LEARNER_YAML, arms=3, actor={'seed': 7})
    by = _by_fqn(specs)
    assert len(specs) == 3 * 3 + 1
    for k in (1, 2, 3):
        ns = f'arm{k}'
        for name in ('twin_node', 'command_guard', 'actor_node'):
            spec = by[f'/{ns}/{name}']
            assert spec.remaps == {'/clock': f'/{ns}/clock'}, spec
        assert by[f'/{ns}/twin_node'].params['seed'] == 7 + k - 1
        assert by[f'/{ns}/actor_node'].params['seed'] == 7 + k - 1
    learner = by['/learner_node']
    assert learner.params['episode_topics'] == [f'/arm{k}/actor_node/episodes'
                                                for k in (1, 2, 3)]
    assert learner.params['use_sim_time'] is False and not learner.remaps
    assert [s.role for s in plan.stop_order(specs, lambda s: s.executable)] == \
        ['actor'] * 3 + ['learner'] + ['guard'] * 3 + ['driver'] * 3


def test_a_fleet_prefix_and_the_seed_of_the_yaml():
    seed = int(P.node_parameters([ROBOT_YAML], 'actor_node')['seed'])
    specs = plan.learning_graph(ROBOT_YAML, LEARNER_YAML, arms=2, namespace='/cell')
    assert {s.namespace for s in specs} == {'cell1', 'cell2', ''}
    assert sorted(s.params['seed'] for s in specs if s.role == 'actor') == [seed, seed + 1]


@pytest.mark.parametrize('kwargs, words', [
    ({'arms': 0}, 'at least one arm'),
    ({'arms': 2, 'driver': 'dxl_driver_node', 'driver_params': {'port': '/dev/ttyUSB0'}},
     'one serial port'),
    ({'driver': 'ur_driver'}, "driver 'ur_driver'"),
])
def test_graphs_that_cannot_be_built_say_why(kwargs, words):
    with pytest.raises(plan.PlanError, match=words):
        plan.learning_graph(ROBOT_YAML, LEARNER_YAML, **kwargs)


def test_each_host_of_a_lab_starts_its_part():
    specs = plan.learning_graph(ROBOT_YAML, LEARNER_YAML, arms=2)
    assert [s.fqn for s in plan.on_host(specs, 'learner')] == ['/learner_node']
    assert {s.fqn for s in plan.on_host(specs, 'arm2')} == {
        '/arm2/twin_node', '/arm2/command_guard', '/arm2/actor_node'}
    assert plan.on_host(specs, '') == specs
    with pytest.raises(plan.PlanError, match=r"only:=arm3: no such part; .*'arm1', 'arm2'"):
        plan.on_host(specs, 'arm3')


def test_an_external_driver_gets_guards_and_actors_but_no_driver_node():
    specs = plan.learning_graph(ROBOT_YAML, LEARNER_YAML, driver=None, arms=2,
                                use_sim_time=False)
    assert sorted(s.role for s in specs) == ['actor', 'actor', 'guard', 'guard', 'learner']
    assert not any(s.remaps for s in specs)


# ---------------------------------------------------------------- the two entry points, live

PATH_PARAMS = ('episode_dir', 'checkpoint_dir', 'log_dir', 'timing_dir')


def _value(msg):
    """A ParameterValue as plain Python, by its declared type."""
    field = {ParameterType.PARAMETER_BOOL: 'bool_value',
             ParameterType.PARAMETER_INTEGER: 'integer_value',
             ParameterType.PARAMETER_DOUBLE: 'double_value',
             ParameterType.PARAMETER_STRING: 'string_value',
             ParameterType.PARAMETER_BYTE_ARRAY: 'byte_array_value',
             ParameterType.PARAMETER_BOOL_ARRAY: 'bool_array_value',
             ParameterType.PARAMETER_INTEGER_ARRAY: 'integer_array_value',
             ParameterType.PARAMETER_DOUBLE_ARRAY: 'double_array_value',
             ParameterType.PARAMETER_STRING_ARRAY: 'string_array_value'}.get(msg.type)
    value = getattr(msg, field) if field else None
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, 'tolist') \
        else value


def _ask(send, what, attempts=6, patience=5.0):
    """The reply to a read-only service request, sent again while none comes. A reply can
    be lost for good: a server whose response writer has not yet discovered the client's
    response reader waits 100 ms and drops it (Fast DDS; ros2/ros2#1253, rclpy#1181), and
    a loaded start-up of 14 processes makes that discovery slow. Seen: a list_parameters
    of /learner_node unanswered for 30 s on a fresh-clone `make test`."""
    for _ in range(attempts):
        future = send()
        try:
            G.wait_for(future.done, patience, 0.05, what)
            return future.result()
        except TimeoutError:
            future.cancel()
    raise TimeoutError(f'no reply to {what} in {attempts} requests of {patience:g} s each')


class GraphView:
    """What an operator sees of a running graph: nodes, their parameters and topics."""

    def __init__(self, domain, out):
        self.probe = Probe(domain, name='trpo_plan_probe')
        self.out = Path(out)
        self._params = {}

    def nodes(self):
        names = self.probe.node.get_node_names_and_namespaces()
        return {(ns.rstrip('/') + '/' + n) for n, ns in names if not n.startswith('trpo_')}

    def parameters(self, fqn):
        """Once per node: its parameters never change after start-up. Paths under the
        run's folder are made relative, so that two runs in two folders compare."""
        if fqn not in self._params:
            client = AsyncParameterClient(self.probe.node, fqn)
            if not client.wait_for_services(timeout_sec=0.1):
                return None
            names = _ask(client.list_parameters, f'{fqn} list').result.names
            values = _ask(lambda: client.get_parameters(names), f'{fqn} get').values
            got = dict(zip(names, map(_value, values)))
            for key in PATH_PARAMS:
                if isinstance(got.get(key), str) and got[key].startswith(str(self.out)):
                    got[key] = os.path.relpath(got[key], self.out)
            self._params[fqn] = got
        return self._params[fqn]

    def topics(self, fqn):
        ns, _, name = fqn.rpartition('/')
        node = self.probe.node
        pubs = node.get_publisher_names_and_types_by_node(name, ns or '/')
        subs = node.get_subscriber_names_and_types_by_node(name, ns or '/')
        return (sorted(t for t, _ in pubs if not t.startswith('/rosout')),
                sorted(t for t, _ in subs if t != '/parameter_events'))

    def snapshot(self, expected):
        nodes = self.nodes()
        if not set(expected) <= nodes:
            return None
        view = {}
        for fqn in sorted(nodes):  # the nodes' helper nodes too (their own subscriptions)
            params = self.parameters(fqn) if fqn in expected else {}
            if params is None:
                return None
            view[fqn] = (params, self.topics(fqn))
        return view

    def close(self):
        self.probe.close()


def _differences(a, b):
    lines = [f'nodes only in launch: {sorted(set(a) - set(b))}',
             f'nodes only in learn: {sorted(set(b) - set(a))}']
    for fqn in sorted(set(a) & set(b)):
        (pa, ta), (pb, tb) = a[fqn], b[fqn]
        for key in sorted(set(pa) | set(pb)):
            if pa.get(key, '<none>') != pb.get(key, '<none>'):
                lines.append(f'{fqn} {key}: launch {pa.get(key, "<none>")!r} '
                             f'learn {pb.get(key, "<none>")!r}')
        if ta != tb:
            lines.append(f'{fqn} topics: launch {ta} learn {tb}')
    return '\n'.join(lines)


@needs_launch
@pytest.mark.timeout(300)
def test_ros2_launch_and_trpo_robot_learn_bring_up_the_same_graph(tmp_path, prefix, ros2):
    """Both entry points, one fleet of two twin arms each, compared live: the same nodes,
    with the same parameters (paths taken relative to each run's folder) and topics. At
    real time: two fleets at once on 2 cores are 14 node processes."""
    values = P.node_parameters([ROBOT_YAML], 'actor_node')
    robot_yaml = P.write_param_file(tmp_path / 'robot.yaml', P.to_ros(P.build(
        P.RobotParams, {**values, 'realtime': False})))  # two graphs on 2 cores: no FIFO
    expected = {f'/arm{k}/{n}' for k in (1, 2)
                for n in ('twin_node', 'command_guard', 'actor_node')} | {'/learner_node'}
    envs = launch_env(tmp_path / 'a', prefix), launch_env(tmp_path / 'b', prefix)
    runs = tmp_path / 'launch_run', tmp_path / 'learn_run'
    launch = Launch(ros2, envs[0], tmp_path / 'a', 'learn.launch.py',
                    ['robot:=ur5', 'arms:=2', 'real_time_factor:=1.0', f'config:={robot_yaml}',
                     f'out:={runs[0]}'])
    learn_log = open(tmp_path / 'learn.out', 'wb')
    learn = subprocess.Popen(
        [sys.executable, '-m', 'trpo_robot.cli', 'learn', '--robot', 'ur5', '--arms', '2',
         '--rtf', '1', '--config', str(robot_yaml), '--out', str(runs[1]),
         '--domain-id', envs[1]['ROS_DOMAIN_ID']],
        env=envs[1], stdout=learn_log, stderr=subprocess.STDOUT, start_new_session=True)
    views = [GraphView(int(env['ROS_DOMAIN_ID']), run)
             for env, run in zip(envs, runs)]
    try:
        def both_up():  # every node visible (the probes' discovery) in both domains
            for proc, what in ((launch.proc, launch.output), (learn, _learn_output)):
                assert proc.poll() is None, f'an entry point exited:\n{what(tmp_path)}'
            return all(expected <= view.nodes() for view in views)
        G.wait_for(both_up, 120, 0.2, 'both graphs up')
        snapshots = [None, None]

        def same():
            for i, view in enumerate(views):
                snapshots[i] = view.snapshot(expected)
            return snapshots[0] is not None and snapshots[0] == snapshots[1]
        try:
            G.wait_for(same, 60, 0.5, 'the two graphs to look the same')
        except TimeoutError:
            if None in snapshots:
                raise AssertionError(f'not every node is visible: {[v.nodes() for v in views]}')
            raise AssertionError(_differences(*snapshots)) from None
        assert expected <= set(snapshots[0])
        learner_params, _ = snapshots[0]['/learner_node']
        arm1, arm2 = (snapshots[0][f'/arm{k}/actor_node'] for k in (1, 2))
        assert arm2[0]['seed'] == arm1[0]['seed'] + 1 and len(arm1[0]) > 30
        assert '/arm1/command_guard/commands' in arm1[1][0]  # publishes to its own guard
        arm1_topics = {t for fqn, (_, (pubs, subs)) in snapshots[0].items()
                       if fqn.startswith('/arm1/') for t in pubs + subs}
        assert {'/arm1/joint_states', '/arm1/clock', '/arm1/forward_velocity_controller/commands',
                '/policy'} <= arm1_topics
        assert not any(t.startswith('/arm2/') or t in ('/clock', '/joint_states')
                       for t in arm1_topics), arm1_topics  # an arm hears only its own
        assert learner_params['episode_topics'] == ['/arm1/actor_node/episodes',
                                                    '/arm2/actor_node/episodes']
    finally:
        for view in views:
            view.close()
        launch.close()
        if learn.poll() is None:
            os.killpg(learn.pid, 2)
            learn.wait(60)
        learn_log.close()


def _learn_output(tmp_path):
    return (tmp_path / 'learn.out').read_text(errors='replace')[-4000:]
