"""Episodes on disk, as MCAP (the ROS 2 bag format), written before they are sent.

One file per episode, `<root>/<actor>/<sequence>.mcap`, holding one
`std_msgs/msg/UInt8MultiArray` message on `<actor>/episodes` whose data is the episode's
blob as it was sent: signed (trpo_robot.auth), so the learner checks a stored episode as
it checks a received one, and a file altered on disk is refused. rosbag2 and Foxglove
read these files as they are. Each file is written to a temporary name, fsynced and
renamed, so a crash leaves either the whole episode or nothing; the learner's checkpoints
record the highest sequence consumed per actor, and `unconsumed()` is what a resumed
learner is fed.
"""
import io
import re
import time
from pathlib import Path

from mcap_ros2.reader import read_ros2_messages
from mcap_ros2.writer import Writer

from trpo_robot.atomic import atomic_write

DATATYPE = 'std_msgs/msg/UInt8MultiArray'
MSGDEF = """std_msgs/MultiArrayLayout layout
uint8[] data
================================================================================
MSG: std_msgs/MultiArrayLayout
std_msgs/MultiArrayDimension[] dim
uint32 data_offset
================================================================================
MSG: std_msgs/MultiArrayDimension
string label
uint32 size
uint32 stride
"""
_NAME = re.compile(r'^(\d{9})\.mcap$')


class StoreError(RuntimeError):
    """An episode file that cannot be written or read back."""


def _actor_dir(actor: str) -> str:
    """A ROS namespace ('/arm1', '') as one safe folder name."""
    name = actor.strip('/').replace('/', '__')
    return name or '_default'


class EpisodeStore:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, actor: str, sequence: int) -> Path:
        return self.root / _actor_dir(actor) / f'{int(sequence):09d}.mcap'

    def write(self, blob: bytes, *, actor: str, sequence: int, stamp_ns=None) -> Path:
        """Write one episode durably; returns its path. Never overwrites an episode."""
        path = self.path(actor, sequence)
        if path.exists():
            raise StoreError(f'{path} exists: episode {sequence} of {actor!r} was written')
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        writer = Writer(buffer)
        schema = writer.register_msgdef(DATATYPE, MSGDEF)
        msg = {'layout': {'dim': [], 'data_offset': 0}, 'data': bytes(blob)}
        writer.write_message(f'{actor.rstrip("/")}/episodes', schema, msg,
                             log_time=stamp_ns or time.time_ns(), sequence=sequence)
        writer.finish()
        return atomic_write(path, buffer.getvalue())

    @staticmethod
    def read(path) -> bytes:
        try:
            msgs = list(read_ros2_messages(str(path)))
        except Exception as e:  # noqa: BLE001 - any damage means the file is unusable
            raise StoreError(f'{path}: not a readable MCAP episode: {e}') from None
        if len(msgs) != 1:
            raise StoreError(f'{path}: expected one episode message, found {len(msgs)}')
        return bytes(msgs[0].ros_msg.data)

    def episodes(self):
        """(actor folder, sequence, path) of every stored episode, in sequence order."""
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for f in folder.iterdir():
                m = _NAME.match(f.name)
                if m:
                    out.append((folder.name, int(m.group(1)), f))
        return sorted(out, key=lambda e: (e[0], e[1]))

    def next_sequence(self, actor: str) -> int:
        """The sequence number after the last stored one: a restarted actor continues."""
        folder = _actor_dir(actor)
        seqs = [s for a, s, _ in self.episodes() if a == folder]
        return max(seqs) + 1 if seqs else 0

    def unconsumed(self, consumed: dict):
        """Episodes after the highest consumed sequence of their actor (keys are actor
        names as sent, e.g. '/arm1')."""
        done = {_actor_dir(a): s for a, s in consumed.items()}
        for folder, seq, path in self.episodes():
            if seq > done.get(folder, -1):
                yield folder, seq, path
