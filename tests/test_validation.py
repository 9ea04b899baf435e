"""Sim-first validation: the record's digests, the trust check of new versions, and
`trpo-robot validate` end to end on the twin (a real checkpoint, real MuJoCo)."""
from dataclasses import replace
import json

import numpy as np
from PIL import Image
import pytest

from trpo_robot.cli import main
from trpo_robot.paths import share_file
from trpo_robot.ros import params as P
from trpo_robot.ros.acting import LoadedPolicy
from trpo_robot.trpo import checkpoint
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.validation import record as R
from trpo_robot.validation.trust import mean_kl, TrustCheck, TrustLimits

OBS, ACT = 12, 2  # dxl_reacher
ENV = 'trpo_robot/DXLReacher-v0'


def _rp(**changes):
    values = P.node_parameters([share_file('config', 'dxl.yaml')], 'actor_node')
    return P.build(P.RobotParams, {**values, **changes})


def _agent(seed=0):
    return Agent(OBS, ACT, TRPOConfig(), seed=seed)


def _loaded(agent, version=0, epoch=0):
    agent.obs_norm.frozen = True
    return LoadedPolicy(agent.snapshot(), agent.obs_norm, version, 0.0, 0.0, epoch=epoch)


# ---------------------------------------------------------------- digests and records

def test_policy_digest_follows_every_part_of_the_policy():
    agent = _agent()
    base = R.policy_digest(agent.snapshot(), agent.obs_norm)
    assert base == R.policy_digest(agent.snapshot(), agent.obs_norm)
    snap = agent.snapshot()
    snap.layers[-1][1][0] += 1e-6
    assert R.policy_digest(snap, agent.obs_norm) != base
    agent.obs_norm.mean = agent.obs_norm.mean + 1e-9
    assert R.policy_digest(agent.snapshot(), agent.obs_norm) != base
    assert R.policy_digest(_agent(seed=1).snapshot(), _agent(seed=1).obs_norm) != base


def test_config_digest_follows_behaviour_not_bookkeeping():
    base = R.config_digest(_rp())
    for same in ({'seed': 7}, {'episode_dir': '/elsewhere'}, {'policy_topic': '/p2'},
                 {'learner_timeout': 5.0}):
        assert R.config_digest(_rp(**same)) == base, same
    for other in ({'agent_dt': 0.05}, {'driver_period': 0.005}, {'task': 'dxl_tracker'}):
        assert R.config_digest(_rp(**other)) != base, other


def test_check_start_says_what_to_run(tmp_path):
    rerun = 'trpo-robot validate --checkpoint X'
    with pytest.raises(R.GateError, match='never validated.*trpo-robot validate'):
        R.check_start(tmp_path, 'p', 'c', rerun)
    R.write_record(tmp_path, {'passed': True, 'policy_sha256': 'p', 'config_sha256': 'c'})
    assert R.check_start(tmp_path, 'p', 'c', rerun)['passed'] is True
    with pytest.raises(R.GateError, match='other weights'):
        R.check_start(tmp_path, 'q', 'c', rerun)
    with pytest.raises(R.GateError, match='another robot configuration'):
        R.check_start(tmp_path, 'p', 'd', rerun)
    R.write_record(tmp_path, {'passed': False, 'failed': ['latency:success_rate_min'],
                              'policy_sha256': 'p', 'config_sha256': 'c'})
    with pytest.raises(R.GateError, match='failed validation .latency:success_rate_min'):
        R.check_start(tmp_path, 'p', 'c', rerun)
    (tmp_path / R.RECORD).write_text('{"passed": true')
    with pytest.raises(R.GateError, match='not valid JSON'):
        R.check_start(tmp_path, 'p', 'c', rerun)


# ---------------------------------------------------------------- trust check

def test_mean_kl_matches_the_closed_form():
    old, new = np.zeros((4, 2)), np.full((4, 2), 0.1)
    std = np.array([0.5, 0.5])
    assert mean_kl(old, std, old, std) == 0.0
    assert mean_kl(old, std, new, std) == pytest.approx(2 * 0.5 * (0.1 / 0.5) ** 2)


def test_trust_takes_a_small_step_and_refuses_a_leap():
    check = TrustCheck(OBS)
    rng = np.random.default_rng(0)
    for _ in range(100):
        check.window.add(rng.standard_normal(OBS))
    agent = _agent()
    running = _loaded(agent, version=3)
    near = agent.snapshot()
    near.layers[-1][1][:] += 0.01
    info = {'policy_version': 4, 'epoch': 0, 'max_kl': 0.02}
    assert check.reason_to_refuse(running, near, agent.obs_norm, info) is None
    assert 0 < check.last_kl < 0.02
    far = _agent(seed=9).snapshot()
    far.layers[-1][1][:] += 1.0
    reason = check.reason_to_refuse(running, far, agent.obs_norm, info)
    assert reason and reason.startswith('KL '), reason
    assert 'cannot be checked' in check.reason_to_refuse(running, near, agent.obs_norm,
                                                         {**info, 'max_kl': 0.0})


def test_trust_refuses_a_fresh_learner_before_the_arm_has_moved():
    """No states yet: the running policy's normaliser stands in, so a random version 0 of a
    new learner cannot slip in before the first episode."""
    trained = _agent()
    trained.obs_norm.mean = np.full(OBS, 0.5)
    snap = trained.snapshot()
    snap.layers[-1][1][:] = 0.6
    running = LoadedPolicy(snap, trained.obs_norm, 40, 0.0, 0.0)
    fresh = _agent(seed=3)
    reason = TrustCheck(OBS).reason_to_refuse(
        running, fresh.snapshot(), fresh.obs_norm, {'policy_version': 0, 'epoch': 9,
                                                    'max_kl': 0.02})
    assert reason and reason.startswith('KL '), reason


def test_trust_refuses_saturated_or_noisy_policies():
    check = TrustCheck(OBS, TrustLimits(max_saturation=0.5, max_std=1.5))
    for _ in range(50):
        check.window.add(np.zeros(OBS))
    agent = _agent()
    pinned = agent.snapshot()
    pinned.layers[-1][1][:] = 5.0
    assert 'outside [-1, 1]' in check.reason_to_refuse(None, pinned, agent.obs_norm, {})
    noisy = agent.snapshot()
    noisy.log_std[:] = np.log(3.0)
    noisy.std = np.exp(noisy.log_std)
    assert 'std' in check.reason_to_refuse(None, noisy, agent.obs_norm, {})


# ---------------------------------------------------------------- validate on the twin

@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('trained')
    assert main(['train', '--env', ENV, '--steps', '2048', '--seed', '0', '--out',
                 str(out)]) == 0
    return out / 'checkpoint'


def _marks(tmp_path, **default):
    path = tmp_path / 'marks.yaml'
    import yaml
    path.write_text(yaml.safe_dump({'default': default}))
    return path


def _validate(folder, marks, *extra):
    return main(['validate', '--checkpoint', str(folder), '--thresholds', str(marks),
                 '--episodes', '4', '--seeds', '0', '1', '--fuzz-steps', '150', *extra])


def test_validate_passes_and_binds_the_record_to_weights_and_config(trained, tmp_path,
                                                                    capsys):
    marks = _marks(tmp_path, success_rate_min=0.0, final_distance_p90_max=10.0,
                   fuzz_violations_max=0)
    assert _validate(trained, marks) == 0
    out = capsys.readouterr().out
    assert 'PASSED' in out and 'randomized' in out and 'shield fuzz' in out
    rec = json.loads((trained / R.RECORD).read_text())
    agent, meta = checkpoint.load(trained)
    agent.obs_norm.frozen = True
    assert rec['passed'] is True and rec['failed'] == []
    assert rec['policy_sha256'] == R.policy_digest(agent.snapshot(), agent.obs_norm)
    assert rec['config_sha256'] == R.config_digest(_rp())
    assert set(rec['figures']) == {'nominal', 'randomized', 'latency', 'noise'}
    assert all(f['episodes'] == 4 for f in rec['figures'].values())
    # Between episodes the lifecycle drove the arm to each start pose (robot time).
    assert all(f['reset_seconds_median'] > 0.1 and f['reset_holds'] == 0
               for f in rec['figures'].values()), rec['figures']
    assert all(f['peak_joint_acceleration'] > 0 for f in rec['figures'].values())
    assert rec['fuzz']['violations'] == 0 and rec['fuzz']['steps'] == 150
    assert set(rec['fuzz']['kinds']) == {'nan', 'inf', 'huge', 'uniform', 'bang_bang',
                                         'wrong_shape'}
    for page in rec['report']:
        pixels = np.asarray(Image.open(page).convert('RGB'))
        assert pixels.shape == (850, 1100, 3) and pixels.std() > 10, page
    R.check_start(trained, rec['policy_sha256'], R.config_digest(_rp()), 'x')


def test_validate_fails_with_what_to_change(trained, tmp_path, capsys):
    marks = _marks(tmp_path, success_rate_min=1.0, final_distance_p90_max=0.001)
    assert _validate(trained, marks, '--no-pictures') == 1
    out = capsys.readouterr().out
    assert 'FAILED' in out and 'FAIL  -> train longer' in out and '--randomize' not in out
    rec = json.loads((trained / R.RECORD).read_text())
    assert rec['passed'] is False and 'nominal:success_rate_min' in rec['failed']
    with pytest.raises(R.GateError, match='failed validation'):
        R.check_start(trained, rec['policy_sha256'], rec['config_sha256'], 'x')


def test_latency_condition_is_two_periods_later():
    from trpo_robot.twin.settings import load_settings
    from trpo_robot.validation.runner import conditions
    settings = load_settings('dxl')
    by_name = {c.name: c for c in conditions(settings)}
    assert by_name['latency'].backend_kwargs['latency'] == pytest.approx(
        settings.latency + 2 * settings.period)
    assert by_name['noise'].backend_kwargs['noise_std'][0] == pytest.approx(
        2 * settings.position_noise)
    assert by_name['randomized'].backend_kwargs['randomization'] is not None
    assert 'randomization' not in by_name['nominal'].backend_kwargs


@pytest.mark.parametrize('argv, message', [
    (['--episodes', '0'], '--episodes must be >= 1'),
    (['--latency-periods', '-1'], '--latency-periods >= 0'),
    (['--seeds', '-1'], 'a seed is an integer'),
    (['--config', 'config/ur5.yaml'], 'runs task ur5_reacher_2d; the checkpoint was trained '
     'on dxl_reacher'),
])
def test_validate_usage_errors_are_one_line(trained, argv, message, capsys):
    conf = [a if a != 'config/ur5.yaml' else str(share_file('config', 'ur5.yaml'))
            for a in argv]
    assert main(['validate', '--checkpoint', str(trained), *conf]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_validate_refuses_a_plain_gymnasium_checkpoint(tmp_path, capsys):
    agent = Agent(3, 1, TRPOConfig())
    checkpoint.save(agent, tmp_path, spaces={'obs_dim': 3, 'act_dim': 1},
                    extra={'env_id': 'Pendulum-v1'})
    assert main(['validate', '--checkpoint', str(tmp_path)]) == 2
    assert 'validate plays arm tasks' in capsys.readouterr().err


def test_fuzz_finds_a_shield_that_lets_speed_through():
    """The fuzz is only worth something if it catches a bad config: a shield whose speed
    cap is ten times the task's lets the unclipped hostile actions through."""
    from trpo_robot.paths import urdf_path
    from trpo_robot.robot.env import ArmEnv, default_shield_config, task_spec
    from trpo_robot.robot.spec import RobotSpec
    from trpo_robot.twin.backend import MujocoBackend
    from trpo_robot.validation import runner
    task = _rp().task_spec()
    spec = RobotSpec.from_urdf(urdf_path(task.urdf), ee_link=task.ee_link)
    loose = replace(default_shield_config(task_spec(spec, task), task),
                    max_velocity=10 * task.max_velocity, max_acceleration=1e3)
    env = ArmEnv(MujocoBackend('dxl', seed=0), task, spec, shield_config=loose)
    try:
        fuzz = runner.shield_fuzz(env, 150, seed=0)
    finally:
        env.close()
    assert fuzz.command_over_speed > 0 and fuzz.command_over_acceleration > 0


def test_a_mark_failed_only_under_latency_says_to_train_under_latency():
    from trpo_robot.validation import report
    from trpo_robot.validation.runner import FuzzFigures
    good = {'success_rate': 1.0, 'final_distance_p90': 0.01}
    figures = {'nominal': good, 'randomized': good, 'noise': good,
               'latency': {'success_rate': 0.5, 'final_distance_p90': 0.01}}
    marks = {c: {'success_rate_min': 0.8, 'final_distance_p90_max': 0.05}
             for c in report.CONDITIONS}
    checks = report.judge(figures, FuzzFigures(), marks)
    failed = [c for c in checks if not c.ok]
    assert [(c.condition, c.mark) for c in failed] == [('latency', 'success_rate_min')]
    assert '--latency' in failed[0].hint
    figures['nominal'] = figures['latency']
    hints = {c.condition: c.hint for c in report.judge(figures, FuzzFigures(), marks)
             if not c.ok}
    assert hints['latency'].startswith('train longer'), hints


def test_the_twin_flags_set_what_validate_widens(trained, tmp_path, capsys):
    """--latency 0.05 is what the arm is expected to meet: the latency condition is that
    plus two periods, and the record says what was expected."""
    marks = _marks(tmp_path, success_rate_min=0.0, final_distance_p90_max=10.0)
    assert _validate(trained, marks, '--no-pictures', '--latency', '0.05', '--randomize') == 0
    out = capsys.readouterr().out
    assert 'latency: latency 70 ms (+2 periods)' in out, out
    rec = json.loads((trained / R.RECORD).read_text())
    assert rec['expected_conditions']['latency'] == 0.05
    assert rec['expected_conditions']['randomization'] is not None
    assert main(['validate', '--checkpoint', str(trained), '--noise', 'x']) == 2


def test_trust_judges_the_network_change_not_the_normaliser_drift():
    """TRPO bounds the change of the network on the inputs as the old version saw them; a
    new version whose only change is its normaliser (the learner absorbed a batch) passes,
    and two honest steps apart pass at twice the distance (KL grows with its square)."""
    check = TrustCheck(OBS)
    rng = np.random.default_rng(1)
    for _ in range(200):
        check.window.add(rng.standard_normal(OBS) * 3 + 2)
    agent = _agent()
    running = _loaded(agent, version=5)
    drifted = _agent().obs_norm
    drifted.mean, drifted.var = np.full(OBS, 2.0), np.full(OBS, 9.0)
    info = {'policy_version': 6, 'epoch': 0, 'max_kl': 0.01}
    assert check.reason_to_refuse(running, agent.snapshot(), drifted, info) is None
    assert check.last_kl == 0.0
    step = agent.snapshot()
    step.layers[-1][1][:] += 0.05
    one = check.reason_to_refuse(running, step, agent.obs_norm, info)
    kl_one = check.last_kl
    two = agent.snapshot()
    two.layers[-1][1][:] += 0.10
    assert check.reason_to_refuse(running, two, agent.obs_norm,
                                  {**info, 'policy_version': 7}) is None
    assert check.last_kl == pytest.approx(4 * kl_one, rel=1e-6)
    assert one is None
