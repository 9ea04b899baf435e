"""The validation record: what passed on the twin, bound to exact weights and config.

A record is only worth something if it cannot be mistaken for another policy's or another
arm's: it names the policy by a digest of everything that decides its actions (layers,
log std, observation normaliser) and the robot configuration by a digest of everything
that decides what those actions do (robot, task limits and speeds, timing, URDF). Topics,
seeds, folders and timeouts are left out: they change nothing the policy does to the arm.
"""
from dataclasses import asdict
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from trpo_robot.atomic import atomic_write
from trpo_robot.paths import urdf_path

RECORD = 'validation.json'
FORMAT = 'trpo_robot.validation'
FORMAT_VERSION = 1
MAX_RECORD_BYTES = 4 * 1024 * 1024


class GateError(ValueError):
    """A policy that may not drive hardware; the message says what to run."""


def policy_digest(snapshot, norm) -> str:
    """SHA-256 over what maps an observation to an action, in a fixed byte layout."""
    h = hashlib.sha256()
    for w, b in snapshot.layers:
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
        h.update(np.ascontiguousarray(b, np.float32).tobytes())
    h.update(np.ascontiguousarray(snapshot.log_std, np.float32).tobytes())
    identity = not hasattr(norm, 'mean')
    h.update(b'identity' if identity else b'running')
    if not identity:
        h.update(np.ascontiguousarray(norm.mean, np.float64).tobytes())
        h.update(np.ascontiguousarray(norm.var, np.float64).tobytes())
        h.update(repr(float(norm.clip)).encode())
    return h.hexdigest()


def config_digest(robot_params) -> str:
    """SHA-256 of the behaviour-deciding part of a RobotParams (see the module doc)."""
    task = robot_params.task_spec()
    urdf = Path(urdf_path(task.urdf)).read_bytes()
    facts = {'robot': robot_params.robot, 'driver_period': robot_params.driver_period,
             'task': _plain(asdict(task)), 'urdf_sha256': hashlib.sha256(urdf).hexdigest()}
    text = json.dumps(facts, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return repr(value)  # exact, and the same text for the same float everywhere
    return value


def write_record(folder, record: dict) -> Path:
    path = Path(folder) / RECORD
    body = {'format': FORMAT, 'format_version': FORMAT_VERSION, **record}
    atomic_write(path, json.dumps(body, indent=2, sort_keys=True, allow_nan=False).encode())
    return path


def read_record(folder) -> dict | None:
    """The record beside a checkpoint, None if there is none; GateError if it is damaged."""
    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise GateError(f'{path} is larger than {MAX_RECORD_BYTES} bytes: not a record')
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GateError(f'{path} is not valid JSON ({e}): run validate again') from None
    if not isinstance(record, dict) or record.get('format') != FORMAT or \
            record.get('format_version') != FORMAT_VERSION:
        raise GateError(f'{path} is not a validation record of this version')
    return record


def check_start(folder, policy: str, config: str, rerun: str) -> dict:
    """The passing record for this policy and config, or GateError saying ``rerun``."""
    record = read_record(folder)
    if record is None:
        raise GateError(f'the policy in {folder} was never validated on the twin: run '
                        f'`{rerun}`')
    if record.get('policy_sha256') != policy:
        raise GateError(f'{Path(folder) / RECORD} validated other weights '
                        f'({str(record.get("policy_sha256"))[:12]}, these are '
                        f'{policy[:12]}): run `{rerun}`')
    if record.get('config_sha256') != config:
        raise GateError(f'{Path(folder) / RECORD} was made for another robot configuration '
                        f'({str(record.get("config_sha256"))[:12]}, this arm runs '
                        f'{config[:12]}): run `{rerun}`')
    if record.get('passed') is not True:
        failed = ', '.join(record.get('failed', [])) or 'see the record'
        raise GateError(f'the policy in {folder} failed validation ({failed}): train it '
                        f'further, then run `{rerun}`')
    return record


def finite_figures(figures: dict) -> dict:
    """JSON cannot hold NaN: a figure that could not be measured is written as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in figures.items()}
