"""Episodes and policy weights as bytes: safetensors payload + string metadata.

This is what crosses process boundaries (ROS topics, disk). Nothing is pickled; every
decoder validates schema, names, shapes, dtypes, finiteness and size before anything is
used, and raises WireError with a reason a log line can carry. Who sent a blob is
trpo_robot.auth's concern; an episode is signed as it is encoded and its signature
checked as it is read, given a keyring (without one, a signed blob's payload is read as
a bare one: recorded and captured episodes are read offline that way).
"""
import json
import math

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from trpo_robot import auth

from .episode import Episode, STEP_ARRAYS
from .networks import IdentityNorm, PolicySnapshot, RunningNorm

SCHEMA_VERSION = '1'
MAX_BLOB_BYTES = 16 * 1024 * 1024
MAX_EPISODE_STEPS = 100_000
MAX_BATCH_STEPS = 10_000_000
EPISODE_KIND, POLICY_KIND = 'trpo_robot.episode', 'trpo_robot.policy'


class WireError(ValueError):
    """A blob that must not be used: the message says why."""


def _check_size(blob, max_bytes):
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise WireError(f'expected bytes, got {type(blob).__name__}')
    if len(blob) > max_bytes:
        raise WireError(f'blob of {len(blob)} bytes exceeds the cap of {max_bytes}')


def _decode(blob, kind, max_bytes):
    _check_size(blob, max_bytes)
    return _parse(auth.payload(blob), kind, max_bytes)


def _parse(blob, kind, max_bytes):
    _check_size(blob, max_bytes)
    if len(blob) < 8:
        raise WireError('blob too short to be safetensors')
    header_len = int.from_bytes(blob[:8], 'little')
    if header_len > len(blob) - 8:
        raise WireError('safetensors header length runs past the blob')
    try:
        header = json.loads(blob[8:8 + header_len])
        tensors = st_load(blob)
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad blob
        raise WireError(f'not a valid safetensors blob: {e}') from None
    meta = header.get('__metadata__') or {}
    if meta.get('kind') != kind:
        raise WireError(f'blob kind is {meta.get("kind")!r}, expected {kind!r}')
    if meta.get('schema') != SCHEMA_VERSION:
        raise WireError(f'schema version {meta.get("schema")!r} is not {SCHEMA_VERSION!r}')
    return meta, tensors


def _require(tensors, name, dtype, shape):
    if name not in tensors:
        raise WireError(f'tensor {name!r} is missing')
    t = tensors[name]
    if t.dtype != dtype:
        raise WireError(f'tensor {name!r} has dtype {t.dtype}, expected {np.dtype(dtype)}')
    mismatch = any(s is not None and a != s for a, s in zip(t.shape, shape))
    if len(t.shape) != len(shape) or mismatch:
        raise WireError(f'tensor {name!r} has shape {t.shape}, expected {shape}')
    if not np.isfinite(t).all():
        raise WireError(f'tensor {name!r} holds NaN or inf')
    return t


def _int_meta(meta, key, low=0, high=2 ** 62):
    try:
        value = int(meta[key])
    except (KeyError, ValueError, TypeError):
        raise WireError(f'metadata {key!r} is missing or not an integer') from None
    if not low <= value <= high:
        raise WireError(f'metadata {key!r}={value} is out of range [{low}, {high}]')
    return value


# ---------------------------------------------------------------- episodes

def _float_meta(meta, key, low, high):
    try:
        value = float(meta[key])
    except ValueError:
        raise WireError(f'metadata {key} is not a number') from None
    if not (math.isfinite(value) and low <= value <= high):
        raise WireError(f'metadata {key}={value} is outside [{low}, {high}]')
    return value


def encode_episode(episode: Episode, *, keyring=None) -> bytes:
    """The episode as a blob; given a keyring, signed (auth.EPISODE) as well."""
    tensors = {
        name: np.ascontiguousarray(getattr(episode, name), np.float32)
        for name in STEP_ARRAYS}
    meta = {'kind': EPISODE_KIND, 'schema': SCHEMA_VERSION,
            'policy_version': str(int(episode.policy_version)), 'robot': episode.robot,
            'task': episode.task, 'actor': episode.actor,
            'sequence': str(int(episode.sequence)),
            'terminated': 'true' if episode.terminated else 'false',
            'aborted': 'true' if episode.aborted else 'false',
            'extra': json.dumps(episode.extra)}
    blob = st_save(tensors, metadata=meta)
    return keyring.sign(blob, auth.EPISODE) if keyring is not None else blob


def read_episode(blob, obs_dim, act_dim, *, keyring=None,
                 max_bytes=MAX_BLOB_BYTES) -> Episode:
    """The one decode of an episode blob: size cap, then (given a keyring) the signature,
    then parse and validate; an Episode, or WireError (auth.AuthError for the signature).

    The cap comes before the signature and the signature before the parse, so an oversized
    or forged blob costs a length check or one hash, never a decode. Without a keyring a
    signed blob's payload is read unchecked: offline tools reading recorded episodes."""
    _check_size(blob, max_bytes)
    payload = keyring.open(blob, auth.EPISODE) if keyring is not None else auth.payload(blob)
    meta, t = _parse(payload, EPISODE_KIND, max_bytes)
    rewards = _require(t, 'rewards', np.float32, (None,))
    n = rewards.shape[0]
    if not 0 < n <= MAX_EPISODE_STEPS:
        raise WireError(f'episode length {n} is outside 1..{MAX_EPISODE_STEPS}')
    arrays = dict(obs=_require(t, 'obs', np.float32, (n, obs_dim)),
                  raw_obs=_require(t, 'raw_obs', np.float32, (n, obs_dim)),
                  actions=_require(t, 'actions', np.float32, (n, act_dim)), rewards=rewards,
                  logp=_require(t, 'logp', np.float32, (n,)),
                  final_obs=_require(t, 'final_obs', np.float32, (obs_dim,)))
    if meta.get('terminated') not in ('true', 'false'):
        raise WireError('metadata terminated must be true or false')
    version = _int_meta(meta, 'policy_version')
    try:
        extra = json.loads(meta.get('extra', '{}'))
    except json.JSONDecodeError:
        raise WireError('metadata extra is not JSON') from None
    if not isinstance(extra, dict):
        raise WireError('metadata extra is not a JSON object')
    return Episode(actor=meta.get('actor', ''), sequence=_int_meta(meta, 'sequence'),
                   policy_version=version, **arrays, terminated=meta['terminated'] == 'true',
                   aborted=meta.get('aborted') == 'true', robot=meta.get('robot', ''),
                   task=meta.get('task', ''), extra=extra)


def decode_episode(blob, obs_dim, act_dim, max_bytes=MAX_BLOB_BYTES):
    """(Segment, metadata dict) or WireError: read_episode for offline tools and tests that
    edit an episode and encode it again (the learner keeps the Episode)."""
    episode = read_episode(blob, obs_dim, act_dim, max_bytes=max_bytes)
    return episode.segment(), episode.info()


# ---------------------------------------------------------------- policies

def encode_policy(snapshot: PolicySnapshot, norm: RunningNorm, version: int, *, robot='',
                  task='', batch_steps=0, epoch=0, max_kl=0.0) -> bytes:
    """``batch_steps``: the learner's batch, so that an actor run synchronously knows how
    many steps the next version needs (0: not said). ``epoch``: when the learner process
    started (ns since 1970): the actor orders policies by (epoch, version), so that a fresh
    learner's version 0 supersedes an old run's version 80, and a replayed old blob does
    not (0: not said). ``max_kl``: the trust region the learner's update kept to, so that an
    actor on real hardware can check a new version against the one it runs (0: not said)."""
    tensors = {'log_std': snapshot.log_std.astype(np.float32),
               'norm_mean': norm.mean.astype(np.float64),
               'norm_var': norm.var.astype(np.float64)}
    for i, (w, b) in enumerate(snapshot.layers):
        tensors[f'layer{i}.weight'] = np.ascontiguousarray(w, np.float32)
        tensors[f'layer{i}.bias'] = np.ascontiguousarray(b, np.float32)
    meta = {'kind': POLICY_KIND, 'schema': SCHEMA_VERSION, 'policy_version': str(int(version)),
            'robot': robot, 'task': task, 'layers': str(len(snapshot.layers)),
            'norm_clip': repr(float(norm.clip)),
            'normalize': 'false' if isinstance(norm, IdentityNorm) else 'true',
            'batch_steps': str(int(batch_steps)), 'epoch': str(int(epoch)),
            'max_kl': repr(float(max_kl))}
    return st_save(tensors, metadata=meta)


def decode_policy(blob, obs_dim, act_dim, max_bytes=MAX_BLOB_BYTES, max_layers=8):
    """Return (PolicySnapshot, normalizer, metadata) or raise WireError."""
    meta, t = _decode(blob, POLICY_KIND, max_bytes)
    n_layers = _int_meta(meta, 'layers', 1, max_layers)
    layers, width = [], obs_dim
    for i in range(n_layers):
        w = _require(t, f'layer{i}.weight', np.float32, (width, None))
        out = act_dim if i == n_layers - 1 else w.shape[1]
        w = _require(t, f'layer{i}.weight', np.float32, (width, out))
        b = _require(t, f'layer{i}.bias', np.float32, (out,))
        layers.append((w, b))
        width = out
    expected = {f'layer{i}.{p}' for i in range(n_layers) for p in ('weight', 'bias')}
    expected |= {'log_std', 'norm_mean', 'norm_var'}
    if set(t) != expected:
        raise WireError(f'unexpected tensors: {sorted(set(t) - expected)}')
    log_std = _require(t, 'log_std', np.float32, (act_dim,))
    norm = _decode_norm(t, meta, obs_dim)
    info = {'policy_version': _int_meta(meta, 'policy_version'),
            'robot': meta.get('robot', ''), 'task': meta.get('task', ''),
            'batch_steps': (_int_meta(meta, 'batch_steps', 0, MAX_BATCH_STEPS)
                            if 'batch_steps' in meta else 0),
            'epoch': _int_meta(meta, 'epoch') if 'epoch' in meta else 0,
            'max_kl': _float_meta(meta, 'max_kl', 0.0, 10.0) if 'max_kl' in meta else 0.0}
    return PolicySnapshot(layers, log_std), norm, info


def _decode_norm(t, meta, obs_dim):
    from .networks import IdentityNorm
    mean = _require(t, 'norm_mean', np.float64, (obs_dim,))
    var = _require(t, 'norm_var', np.float64, (obs_dim,))
    if (var < 0).any():
        raise WireError('normalizer variance is negative')
    try:
        clip = float(meta.get('norm_clip', '10.0'))
    except ValueError:
        raise WireError('metadata norm_clip is not a number') from None
    norm = (RunningNorm if meta.get('normalize', 'true') == 'true' else IdentityNorm)(
        obs_dim, clip=clip)
    norm.mean, norm.var, norm.frozen = mean.copy(), var.copy(), True
    return norm
