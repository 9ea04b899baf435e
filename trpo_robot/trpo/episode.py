"""An episode as the learner holds it: decoded and validated once, then never re-read.

``wire.read_episode`` is the only way a blob becomes an ``Episode``; from there the record
travels unchanged to the TRPO update (``Agent.update`` reads the same fields as a
``Segment``'s). Frozen, with read-only arrays, so no stage between the check and the
update can turn a validated episode into an invalid one.
"""
from dataclasses import dataclass, field

import numpy as np

from .batch import Segment


@dataclass(frozen=True, eq=False)
class Episode:
    """One received segment of an episode (all steps acted by one policy version).

    Identity, not field-by-field equality: two records are the same episode when their
    ``key`` is (that is the learner's duplicate check), and arrays have no single truth
    value to compare by."""

    actor: str
    sequence: int
    policy_version: int
    obs: np.ndarray
    raw_obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    logp: np.ndarray
    final_obs: np.ndarray
    terminated: bool
    aborted: bool = False
    robot: str = ''
    task: str = ''
    extra: dict = field(default_factory=dict)
    """The actor's JSON notes (return, success, shield steps...): outside the tensor checks,
    so readers take numbers from it with a default (learning._finite)."""

    def __post_init__(self):
        for name in ('obs', 'raw_obs', 'actions', 'rewards', 'logp', 'final_obs'):
            getattr(self, name).setflags(write=False)

    def __len__(self):
        return len(self.rewards)

    @property
    def key(self):
        """(actor, sequence): what the ledger, duplicates and resumes go by."""
        return self.actor, self.sequence

    @property
    def episode_return(self):
        return float(self.rewards.sum())

    def info(self) -> dict:
        """The metadata as the offline tools read it (wire.decode_episode's second half)."""
        return {'policy_version': self.policy_version, 'sequence': self.sequence,
                'robot': self.robot, 'task': self.task, 'actor': self.actor,
                'aborted': self.aborted, 'extra': self.extra}

    def segment(self) -> Segment:
        """A writable copy, for tools that edit an episode and encode it again."""
        return Segment(*(np.array(getattr(self, n)) for n in (
            'obs', 'raw_obs', 'actions', 'rewards', 'logp', 'final_obs')),
            self.terminated, self.policy_version, self.episode_return)
