"""Checkpoints: weights as safetensors, everything else as JSON; never pickle.

A checkpoint is a folder with `meta.json` and the weights file it names,
`model-<sha256 prefix>.safetensors`. Both are written atomically (temporary file, fsync,
rename); the weights go to a new name first and meta.json, replaced last, switches to them,
so a process killed at any moment leaves the previous checkpoint whole and loadable (a
learner saves after every update). meta.json records the weights' SHA-256, so a damaged
file is detected instead of loaded. Older checkpoints name no file and use
`model.safetensors`.
"""
import re
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from trpo_robot.atomic import atomic_write
from trpo_robot.paths import CHECKPOINT_META

from .agent import Agent
from .config import TRPOConfig

FORMAT = 'trpo_robot.checkpoint'
FORMAT_VERSION = 1
WEIGHTS = 'model.safetensors'
"""The weights file of checkpoints whose meta.json names none (written before names)."""
_WEIGHTS_NAME = re.compile(r'^model(-[0-9a-f]{16})?\.safetensors$')
META = CHECKPOINT_META
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged, or does not fit what it is loaded for."""


def agent_tensors(agent: Agent) -> dict:
    tensors = {f'pi.{k}': v.detach().contiguous() for k, v in agent.pi.state_dict().items()}
    tensors.update({f'v.{k}': v.detach().contiguous() for k, v in agent.v.state_dict().items()})
    for k, v in agent.obs_norm.state().items():
        tensors[f'obs_norm.{k}'] = torch.from_numpy(np.asarray(v, np.float64))
    for i, state in agent.v_optim.state_dict()['state'].items():
        for k, v in state.items():
            tensors[f'v_optim.{i}.{k}'] = torch.as_tensor(v).detach().clone().reshape(
                v.shape if torch.is_tensor(v) else ())
    return tensors


def save(agent: Agent, folder, *, spaces: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint of `agent`. spaces: {'obs_dim', 'act_dim', 'action_low',
    'action_high'}; extra: JSON-able facts a caller wants back (env id, seed, episodes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blob = st_save(agent_tensors(agent))
    sha = hashlib.sha256(blob).hexdigest()
    weights = f'model-{sha[:16]}.safetensors'
    atomic_write(folder / weights, blob)
    meta = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'config': agent.config.to_dict(), 'spaces': _jsonable(spaces),
        'policy_version': agent.version, 'total_steps': agent.total_steps,
        'obs_norm_frozen': bool(agent.obs_norm.frozen),
        'weights_sha256': sha, 'weights_file': weights,
        'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'extra': extra or {},
    }
    atomic_write(folder / META, json.dumps(meta, indent=2, sort_keys=True).encode())
    _drop_unreferenced_weights(folder, keep=weights)
    return folder


def _drop_unreferenced_weights(folder, keep):
    """Weights no meta.json names any more: earlier saves, or one a kill cut short."""
    for path in folder.iterdir():
        if path.name != keep and _WEIGHTS_NAME.match(path.name):
            path.unlink(missing_ok=True)


def _jsonable(d):
    return {k: (np.asarray(v).tolist() if isinstance(v, (np.ndarray, list, tuple)) else v)
            for k, v in d.items()}


def read_meta(folder) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f'checkpoint folder {folder} does not exist')
    try:
        meta = json.loads((folder / META).read_text())
    except FileNotFoundError:
        raise CheckpointError(f'{folder} has no {META}: not a checkpoint') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f'{folder / META} is not valid JSON: {e}') from None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        raise CheckpointError(f'{folder / META} is not a trpo_robot checkpoint')
    if meta.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'checkpoint format version {meta.get("format_version")} '
                              f'is not supported (expected {FORMAT_VERSION})')
    for key in ('config', 'spaces', 'policy_version', 'total_steps', 'weights_sha256'):
        if key not in meta:
            raise CheckpointError(f'{folder / META} lacks {key!r}')
    return meta


def load(folder, *, expect_obs_dim=None, expect_act_dim=None) -> tuple[Agent, dict]:
    """Rebuild the agent and validate every tensor: names, shapes, dtypes, finiteness."""
    folder = Path(folder)
    meta = read_meta(folder)
    spaces = meta['spaces']
    _check_dims(spaces, expect_obs_dim, expect_act_dim)
    try:
        config = TRPOConfig.from_dict({'value_scaling': False, **meta['config']})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f'checkpoint config is invalid: {e}') from None
    tensors = _read_weights(folder / _weights_name(meta, folder), meta['weights_sha256'])
    agent = Agent(int(spaces['obs_dim']), int(spaces['act_dim']), config)
    _load_into(agent, tensors)
    agent.version = int(meta['policy_version'])
    agent.total_steps = int(meta['total_steps'])
    agent.obs_norm.frozen = bool(meta.get('obs_norm_frozen', False))
    return agent, meta


def _check_dims(spaces, obs_dim, act_dim):
    for name, want in (('obs_dim', obs_dim), ('act_dim', act_dim)):
        if want is not None and int(spaces.get(name, -1)) != int(want):
            raise CheckpointError(f'checkpoint {name} is {spaces.get(name)}, but the '
                                  f'environment has {want}')


def _weights_name(meta, folder):
    name = meta.get('weights_file', WEIGHTS)
    if not isinstance(name, str) or not _WEIGHTS_NAME.match(name):
        raise CheckpointError(f'{folder / META} names a weights file {name!r} that no '
                              'checkpoint writes')
    return name


def _read_weights(path, sha256):
    if not path.is_file():
        raise CheckpointError(f'{path} is missing')
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f'{path} is larger than {MAX_WEIGHTS_BYTES} bytes')
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise CheckpointError(f'{path} does not match the hash in {META}: '
                              'the checkpoint is damaged or was half written')
    try:
        return st_load(blob)
    except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
        raise CheckpointError(f'{path} is not a valid safetensors file: {e}') from None


VALUE_SCALE_KEYS = ('v.shift', 'v.scale')
"""Absent from checkpoints written before ValueNet had a scale (their config has no
value_scaling either, which load reads as off); the fresh net's identity (shift 0, scale 1)
is exactly the value function those checkpoints saved."""


def _load_into(agent, tensors):
    want = agent_tensors(agent)
    tensors = dict(tensors)
    for key in VALUE_SCALE_KEYS:
        tensors.setdefault(key, want[key])
    optim_keys = {k for k in want if k.startswith('v_optim.')}
    missing = sorted(set(want) - set(tensors) - optim_keys)
    unknown = sorted(k for k in set(tensors) - set(want) if not k.startswith('v_optim.'))
    if missing or unknown:
        raise CheckpointError(f'checkpoint tensors do not fit the network: missing '
                              f'{missing[:5]}, unexpected {unknown[:5]}')
    for key, ref in want.items():
        if key in optim_keys:
            continue
        got = tensors[key]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise CheckpointError(f'tensor {key}: shape {tuple(got.shape)} {got.dtype}, '
                                  f'expected {tuple(ref.shape)} {ref.dtype}')
        if not torch.isfinite(got).all():
            raise CheckpointError(f'tensor {key} holds NaN or inf')
    agent.pi.load_state_dict({k[3:]: v for k, v in tensors.items() if k.startswith('pi.')})
    if not tensors['v.scale'] > 0:
        raise CheckpointError('value scale is not positive')
    agent.v.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith('v.')})
    norm = {k[9:]: tensors[k].numpy() for k in tensors if k.startswith('obs_norm.')}
    if (norm['var'] < 0).any():
        raise CheckpointError('normalizer variance is negative')
    agent.obs_norm.load_state(norm)
    _load_optimizer(agent, tensors)


def _load_optimizer(agent, tensors):
    """Restore Adam moments when present, so --resume continues the value fit smoothly."""
    state = {}
    for key, value in tensors.items():
        if key.startswith('v_optim.'):
            _, idx, name = key.split('.', 2)
            state.setdefault(int(idx), {})[name] = value
    if not state:
        return
    sd = agent.v_optim.state_dict()
    sd['state'] = state
    try:
        agent.v_optim.load_state_dict(sd)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f'value optimizer state does not fit: {e}') from None
