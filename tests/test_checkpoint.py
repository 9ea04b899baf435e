"""Checkpoints round-trip exactly and refuse anything that does not fit."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_file_bytes

from trpo_robot.trpo import checkpoint
from trpo_robot.trpo.agent import Agent
from trpo_robot.trpo.config import TRPOConfig
from trpo_robot.trpo.fisher import flat_params

SPACES = {'obs_dim': 3, 'act_dim': 2, 'action_low': [-1, -1], 'action_high': [1, 1]}


def _trained_agent():
    agent = Agent(3, 2, TRPOConfig(policy_hidden=(16, 16), value_hidden=(16,)), seed=3)
    with torch.no_grad():
        for p in agent.pi.parameters():
            p.add_(0.1 * torch.randn_like(p))
    agent.obs_norm.update(np.random.default_rng(0).normal(2.0, 3.0, (100, 3)))
    loss = agent.v(torch.randn(8, 3)).pow(2).mean()
    loss.backward()
    agent.v_optim.step()
    agent.version, agent.total_steps = 7, 1234
    return agent


def test_round_trip_gives_identical_actions_and_state(tmp_path):
    agent = _trained_agent()
    checkpoint.save(agent, tmp_path, spaces=SPACES, extra={'env_id': 'X-v0'})
    loaded, meta = checkpoint.load(tmp_path)
    obs = np.random.default_rng(1).normal(size=(50, 3))
    for x in obs:
        assert np.array_equal(agent.act_deterministic(x), loaded.act_deterministic(x))
    assert torch.equal(flat_params(agent.pi), flat_params(loaded.pi))
    assert torch.equal(flat_params(agent.v), flat_params(loaded.v))
    assert (loaded.version, loaded.total_steps) == (7, 1234)
    assert loaded.config == agent.config
    assert meta['extra']['env_id'] == 'X-v0'
    assert np.array_equal(loaded.obs_norm.mean, agent.obs_norm.mean)
    adam_before = agent.v_optim.state_dict()['state'][0]['exp_avg']
    assert torch.equal(loaded.v_optim.state_dict()['state'][0]['exp_avg'], adam_before)


def test_wrong_environment_dimensions_are_refused(tmp_path):
    checkpoint.save(_trained_agent(), tmp_path, spaces=SPACES)
    with pytest.raises(checkpoint.CheckpointError, match='obs_dim is 3'):
        checkpoint.load(tmp_path, expect_obs_dim=5)


def test_damaged_weights_are_refused(tmp_path):
    checkpoint.save(_trained_agent(), tmp_path, spaces=SPACES)
    weights = tmp_path / checkpoint.read_meta(tmp_path)['weights_file']
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match='does not match the hash'):
        checkpoint.load(tmp_path)


def test_nan_weights_are_refused_even_with_a_matching_hash(tmp_path):
    agent = _trained_agent()
    with torch.no_grad():
        agent.pi.log_std[0] = float('nan')
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    with pytest.raises(checkpoint.CheckpointError, match='NaN or inf'):
        checkpoint.load(tmp_path)


def test_network_shape_mismatch_is_refused(tmp_path):
    checkpoint.save(_trained_agent(), tmp_path, spaces=SPACES)
    meta = json.loads((tmp_path / checkpoint.META).read_text())
    meta['config']['policy_hidden'] = [8, 8]
    (tmp_path / checkpoint.META).write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match='shape'):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize('content,match', [(None, 'no meta.json'), ('{', 'not valid JSON'),
                                           ('{"format": "other"}', 'not a trpo_robot')])
def test_missing_or_foreign_metadata(tmp_path, content, match):
    if content is not None:
        (tmp_path / checkpoint.META).write_text(content)
    with pytest.raises(checkpoint.CheckpointError, match=match):
        checkpoint.load(tmp_path)


def test_no_temporary_or_earlier_files_are_left_behind(tmp_path):
    agent = _trained_agent()
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    agent.version += 1
    with torch.no_grad():
        agent.pi.log_std += 0.1
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    weights = checkpoint.read_meta(tmp_path)['weights_file']
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([checkpoint.META, weights])


def test_a_save_killed_before_its_metadata_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    agent = _trained_agent()
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    version = agent.version
    agent.version += 1
    with torch.no_grad():
        agent.pi.log_std += 0.1

    def killed_at_meta(path, data):
        if Path(path).name == checkpoint.META:
            raise KeyboardInterrupt('killed')  # the process dies here
        return real_write(path, data)
    real_write = checkpoint.atomic_write
    monkeypatch.setattr(checkpoint, 'atomic_write', killed_at_meta)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(agent, tmp_path, spaces=SPACES)
    monkeypatch.undo()
    loaded, meta = checkpoint.load(tmp_path)
    assert loaded.version == version == meta['policy_version']
    checkpoint.save(agent, tmp_path, spaces=SPACES)  # the next save tidies up
    assert len(list(tmp_path.glob('model*.safetensors'))) == 1
    assert checkpoint.load(tmp_path)[0].version == version + 1


def test_checkpoints_of_the_first_format_still_load(tmp_path):
    agent = _trained_agent()
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    meta = json.loads((tmp_path / checkpoint.META).read_text())
    (tmp_path / meta.pop('weights_file')).rename(tmp_path / checkpoint.WEIGHTS)
    (tmp_path / checkpoint.META).write_text(json.dumps(meta))
    assert checkpoint.load(tmp_path)[0].version == agent.version


def test_a_weights_file_outside_the_folder_is_refused(tmp_path):
    checkpoint.save(_trained_agent(), tmp_path, spaces=SPACES)
    meta = json.loads((tmp_path / checkpoint.META).read_text())
    meta['weights_file'] = '../elsewhere.safetensors'
    (tmp_path / checkpoint.META).write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match='names a weights file'):
        checkpoint.load(tmp_path)


def test_checkpoints_from_before_the_value_scale_load_with_the_same_values(tmp_path):
    agent = _trained_agent()
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    meta = checkpoint.read_meta(tmp_path)
    tensors = checkpoint.agent_tensors(agent)
    for key in checkpoint.VALUE_SCALE_KEYS:
        del tensors[key]
    blob = save_file_bytes(tensors)
    (tmp_path / meta['weights_file']).write_bytes(blob)
    meta['weights_sha256'] = hashlib.sha256(blob).hexdigest()
    del meta['config']['value_scaling']
    (tmp_path / checkpoint.META).write_text(json.dumps(meta))
    loaded, _ = checkpoint.load(tmp_path)
    assert loaded.config.value_scaling is False  # the run resumes as it was
    obs = torch.randn(20, 3)
    with torch.no_grad():
        assert torch.equal(loaded.v(obs), agent.v(obs))


def test_a_scaled_value_function_round_trips(tmp_path):
    agent = _trained_agent()
    agent.v.retarget(torch.tensor([300.0, 500.0, 100.0]))
    checkpoint.save(agent, tmp_path, spaces=SPACES)
    loaded, _ = checkpoint.load(tmp_path)
    assert float(loaded.v.scale) == float(agent.v.scale) > 100
    obs = torch.randn(20, 3)
    with torch.no_grad():
        assert torch.equal(loaded.v(obs), agent.v(obs))
