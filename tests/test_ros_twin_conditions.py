"""The twin_* parameters in the real graph: twin_node draws what the YAML asks for, says it
on its latched ~/conditions, and the actor records it in every episode it sends."""
import json

import pytest
from ros_support import Graph
from std_msgs.msg import String

from trpo_robot.ros import node_utils as U
from trpo_robot.ros import params as P
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import wire
from trpo_robot.twin.settings import load_settings

pytestmark = pytest.mark.timeout(600)
TWIN = {'twin_randomize': True, 'twin_latency': 0.02, 'twin_latency_periods': [1, 1],
        'twin_position_noise': 0.001, 'seed': 3}


def _recorded(g, obs_dim, act_dim):
    """The twin conditions in each stored episode's extra (None where there are none)."""
    out = []
    for _, _, path in EpisodeStore(g.rp.episode_dir).episodes():
        extra = wire.decode_episode(EpisodeStore.read(path), obs_dim, act_dim)[1]['extra']
        out.append(extra.get('twin'))
    return out


def test_the_twin_draws_what_the_yaml_says_and_every_episode_records_it(tmp_path):
    g = Graph(tmp_path / 'graph', robot='dxl',
              robot_params={'real_time_factor': 2.0, **TWIN},
              learner_params={'trpo.batch_steps': 150})
    try:
        # transient_local: heard whenever the probe joins, as a restarted actor would
        g.probe.listen('conditions', String, '/twin_node/conditions', U.QOS_POLICY)
        said = json.loads(g.heard('conditions')[0][1].data)
        assert said['randomized'] and said['seed'] == 3
        assert said['latency_s'] == pytest.approx(0.03)  # 0.02 s plus one 10 ms period
        assert said['latency_periods'] == 3.0 and said['extra_latency_periods'] == 1
        assert said['position_noise'] == 0.001
        assert said['velocity_noise'] == load_settings('dxl').velocity_noise
        assert set(said['mass']) == {'link1', 'link2', 'link3'}
        assert all(0.8 <= f <= 1.2 for f in said['mass'].values())
        dims = P.task_dims(g.rp.task_spec())
        records = g.wait(lambda: [r for r in _recorded(g, *dims) if r], 240,
                         'a stored episode that records the twin conditions')
        assert all(r == said for r in records)
    finally:
        g.close()
