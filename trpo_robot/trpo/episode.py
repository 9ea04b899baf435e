"""An episode from the step it is recorded to the update that learns from it.

``EpisodeRecorder`` cuts a ``Segment`` (the steps a TRPO batch is built from); the actor
names it (``Episode.of``: actor, sequence, outcome) and that same record is encoded,
signed, sent, decoded once (``wire.read_episode``) and handed unchanged to the update.
Frozen, with read-only arrays once it is an ``Episode``, so no stage between the check
and the update can turn a validated episode into an invalid one.
"""
from dataclasses import dataclass, field, fields

import numpy as np

STEP_ARRAYS = ('obs', 'raw_obs', 'actions', 'rewards', 'logp', 'final_obs')


@dataclass(frozen=True, eq=False)
class Segment:
    """Consecutive steps of one episode, all acted by one policy version.

    obs holds the normalized inputs the policy saw; raw_obs the unnormalized observations
    (for the normalizer statistics). Only the last step can end the episode: if terminated
    is False the segment was truncated (time limit, batch end, a policy swap) and is
    bootstrapped from final_obs.
    """

    obs: np.ndarray
    raw_obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    logp: np.ndarray
    final_obs: np.ndarray
    terminated: bool
    policy_version: int = 0

    def __len__(self):
        return len(self.rewards)

    @property
    def episode_return(self):
        return float(self.rewards.sum())


@dataclass(frozen=True, eq=False, kw_only=True)
class Episode(Segment):
    """A segment with the actor's name for it and its outcome: what travels to the learner.

    Identity, not field-by-field equality: two records are the same episode when their
    ``key`` is (that is the learner's duplicate check), and arrays have no single truth
    value to compare by."""

    actor: str = ''
    sequence: int = 0
    aborted: bool = False
    robot: str = ''
    task: str = ''
    extra: dict = field(default_factory=dict)
    """The actor's JSON notes (return, success, shield steps...): outside the tensor checks,
    so readers take numbers from it with a default (learning._finite)."""

    def __post_init__(self):
        for name in STEP_ARRAYS:
            getattr(self, name).setflags(write=False)

    @classmethod
    def of(cls, segment: Segment, **names) -> 'Episode':
        """The recorded steps, named for the wire (``names``: the keyword fields). The
        arrays are taken, not copied, and are read-only from then on, in the segment too."""
        return cls(**{f.name: getattr(segment, f.name) for f in fields(Segment)}, **names)

    @property
    def key(self):
        """(actor, sequence): what the ledger, duplicates and resumes go by."""
        return self.actor, self.sequence

    def info(self) -> dict:
        """The metadata as the offline tools read it (wire.decode_episode's second half)."""
        return {'policy_version': self.policy_version, 'sequence': self.sequence,
                'robot': self.robot, 'task': self.task, 'actor': self.actor,
                'aborted': self.aborted, 'extra': self.extra}

    def segment(self) -> Segment:
        """A writable copy, for tools that edit an episode and encode it again."""
        return Segment(*(np.array(getattr(self, n)) for n in STEP_ARRAYS),
                       self.terminated, self.policy_version)


class EpisodeRecorder:
    """Accumulates one episode's steps and cuts them into Segments."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.obs, self.raw, self.act, self.rew, self.logp = [], [], [], [], []

    def add(self, obs, raw, act, rew, logp):
        self.obs.append(obs)
        self.raw.append(raw)
        self.act.append(act)
        self.rew.append(rew)
        self.logp.append(logp)

    def __len__(self):
        return len(self.rew)

    def cut(self, final_obs, terminated, version) -> Segment:
        """The steps so far, in arrays of their own: final_obs is copied too (an identity
        normaliser hands back the caller's observation), so ``Episode.of`` can make them
        read-only without touching anything the caller still holds."""
        seg = Segment(np.asarray(self.obs, np.float32), np.asarray(self.raw, np.float32),
                      np.asarray(self.act, np.float32), np.asarray(self.rew, np.float32),
                      np.asarray(self.logp, np.float32), np.array(final_obs, np.float32),
                      bool(terminated), version)
        self.clear()
        return seg
