"""TensorBoard scalars for `train` and `learn`, written only when a folder is given.

The tag names are shared here so that a `train` run and a `learn` run plot into the same
charts (README.md, "TensorBoard", lists them). A value that does not exist for a run (no
finished episode in a batch, no success flag from a plain gymnasium env, no control loop
in `train`) is passed as None or NaN and left out: a zero would read as a measurement.
"""
import math

RETURN = 'episode/return'
SUCCESS = 'episode/success_rate'
KL = 'update/kl'
ACCEPTED = 'update/accepted'
BACKTRACKS = 'update/backtracks'
UPDATE_TIME = 'update/time_s'
INTERVENTIONS = 'safety/intervention_fraction'
LATENESS_P99 = 'control/lateness_p99_ms'
OVERRUNS = 'control/overruns'


def update_values(stats) -> dict:
    """What one TRPO update did (an agent.UpdateStats), under the shared tags."""
    return {KL: stats.kl, ACCEPTED: float(stats.accepted), BACKTRACKS: stats.backtracks,
            UPDATE_TIME: stats.update_time}


def fraction(hits, total):
    """hits / total, or None when there was nothing to count."""
    return hits / total if total else None


class ScalarLog:
    """One TensorBoard run folder. torch's SummaryWriter (and with it the tensorboard
    package) is imported here, on first use, so that runs without the flag load neither."""

    def __init__(self, folder):
        from torch.utils.tensorboard import SummaryWriter
        self._writer = SummaryWriter(log_dir=str(folder))

    def write(self, step: int, values: dict) -> list:
        """Add the finite values at ``step`` and flush (a killed process keeps what it
        wrote); returns the tags written."""
        written = []
        for tag, value in values.items():
            if value is None or not math.isfinite(value):
                continue
            self._writer.add_scalar(tag, float(value), int(step))
            written.append(tag)
        self._writer.flush()
        return written

    def close(self):
        self._writer.close()
