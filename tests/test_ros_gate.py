"""The sim-first gate on a real actor_node process: on hardware (require_validation, as the
plan sets it for every driver but the twin) the actor starts only from a checkpoint with a
passing validation record for its weights and config, and refuses a new version that
leaves the trust region. The twin stands in for the arm here; the actor cannot tell."""
import pytest
from ros_support import Graph
from std_msgs.msg import UInt8MultiArray

from trpo_robot import auth
from trpo_robot.cli import main
from trpo_robot.paths import share_file
from trpo_robot.ros import graph as G
from trpo_robot.ros import node_utils as U
from trpo_robot.store import EpisodeStore
from trpo_robot.trpo import checkpoint, wire
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import TRPOConfig

pytestmark = pytest.mark.timeout(900)
OBS, ACT = 12, 2
TIMEOUT = 120


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('gate')
    assert main(['train', '--env', 'trpo_robot/DXLReacher-v0', '--steps', '2048', '--out',
                 str(out)]) == 0
    return out / 'checkpoint'


def _lenient_validation(folder, tmp_path):
    marks = tmp_path / 'marks.yaml'
    marks.write_text('default: {success_rate_min: 0.0, final_distance_p90_max: 10.0}\n')
    assert main(['validate', '--checkpoint', str(folder), '--thresholds', str(marks),
                 '--episodes', '2', '--seeds', '0', '--fuzz-steps', '50',
                 '--no-pictures']) == 0


def _refusal(tmp_path, params) -> str:
    """Start a gated actor_node alone; it must exit 2 with one line and no traceback."""
    proc = G.NodeProcess('actor_node', [share_file('config', 'dxl.yaml')],
                         G.ros_env(G.free_domain_id()), tmp_path / 'logs',
                         params={'require_validation': True, 'realtime': False,
                                 'episode_dir': str(tmp_path / 'episodes'), **params})
    try:
        assert proc.proc.wait(TIMEOUT) == 2, proc.tail(20)
    finally:
        proc.stop()
    log = proc.log_path.read_text()
    assert 'Traceback' not in log, log
    return next(line for line in log.splitlines() if 'actor_node: error:' in line)


def test_no_starting_policy_is_refused_with_what_to_run(tmp_path):
    line = _refusal(tmp_path, {})
    assert 'starts only from a validated policy' in line and 'trpo-robot validate' in line


def test_an_unvalidated_checkpoint_is_refused(tmp_path, trained):
    line = _refusal(tmp_path, {'policy_checkpoint': str(trained)})
    assert 'never validated on the twin' in line, line


def test_a_record_for_another_config_is_refused(tmp_path, trained):
    _lenient_validation(trained, tmp_path)
    line = _refusal(tmp_path, {'policy_checkpoint': str(trained), 'agent_dt': 0.05})
    assert 'another robot configuration' in line, line


def _far_policy(version, epoch):
    agent = Agent(OBS, ACT, TRPOConfig(), seed=11)
    snap = agent.snapshot()
    snap.layers[-1][1][:] = 0.9
    return auth.Keyring.from_file().sign(
        wire.encode_policy(snap, agent.obs_norm, version, robot='dxl', task='dxl_reacher',
                           epoch=epoch, max_kl=0.02), auth.POLICY)


def test_a_gated_actor_acts_the_validated_policy_and_refuses_a_leap(tmp_path, trained):
    _lenient_validation(trained, tmp_path)
    version = checkpoint.read_meta(trained)['policy_version']
    g = Graph(tmp_path / 'graph', robot_params={
        'require_validation': True, 'policy_checkpoint': str(trained),
        'real_time_factor': 2.0}, learner_params={'resume': str(trained)})
    try:
        g.probe.watch('actor', 'actor_node')
        policy = g.probe.node.create_publisher(UInt8MultiArray, '/policy', U.QOS_POLICY)

        def diag(field):
            values = g.probe.diag('actor', 'policy')
            return float(values[field]) if values and field in values else -1.0

        def gated():
            return (g.probe.diag('actor', 'policy') or {}).get('gated') == 'True'
        g.wait(lambda: gated() and diag('accepted') >= 2, TIMEOUT,
               lambda: f'the gated actor to take the learner\'s resumed version (accepted '
               f'{diag("accepted")}, gated {gated()})')
        store = EpisodeStore(tmp_path / 'graph' / 'episodes')
        g.wait(lambda: len(list(store.episodes())) >= 2, TIMEOUT, 'two stored episodes')
        policy.publish(UInt8MultiArray(data=_far_policy(version + 1000, 2**61)))
        g.wait(lambda: diag('untrusted') >= 1, TIMEOUT,
               lambda: f'the far version refused (untrusted {diag("untrusted")})')
        assert version <= diag('version') < version + 1000, diag('version')
        assert 'KL' in g.probe.diag('actor', 'policy')['last_reject']
        logs = (tmp_path / 'graph' / 'logs' / 'actor_node.log').read_text()
        assert 'passed validation' in logs, logs
    finally:
        g.close()
