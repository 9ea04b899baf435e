"""Signed blobs: who may hand the actor a policy, and the learner an episode.

Anyone on the ROS domain can publish on /policy and on the episode topics. Every policy and
episode blob therefore travels in an envelope whose HMAC-SHA256 tag covers all of it: a
fixed header (magic, kind, format, key id) and the whole serialized blob, tensors and
metadata alike, so no field lies outside the MAC. The tag is checked before any byte of
the payload is parsed, so a forged or damaged blob costs one hash, not a decode.

Envelope (46 bytes, then the payload)::

    b'TRSG' | kind (b'P' policy, b'E' episode) | format (1) | key id (8) | tag (32)

The kind is signed too: an episode cannot be passed off as a policy. The key id (derived
from the key, it says nothing about it) lets a reader name the key that a blob needs.

The learner and its actors share one secret key, a file readable by its owner only. It
is made on first use, so a fresh machine runs out of the box; an actor on another host
needs a copy of the learner's file (docs/ros.md).
"""
import hashlib
import hmac
import os
from pathlib import Path
import secrets
import stat
import tempfile

MAGIC = b'TRSG'
FORMAT = 1
POLICY, EPISODE = b'P', b'E'
KEY_ID_BYTES, TAG_BYTES, KEY_BYTES = 8, 32, 32
HEADER_BYTES = len(MAGIC) + 2 + KEY_ID_BYTES
ENVELOPE_BYTES = HEADER_BYTES + TAG_BYTES
DEFAULT_KEY = Path('trpo_robot') / 'fleet.key'
"""Under $XDG_CONFIG_HOME (~/.config): one key per user and fleet, not per run, so an
actor host is given it once and a results folder that gets shared never holds it."""


class AuthError(ValueError):
    """A blob that is unsigned, damaged, or signed with a key this node does not hold."""


class KeyFileError(ValueError):
    """A key file that must not be used; the message says what to do."""


def key_path(path='') -> Path:
    """The key file a parameter names; '' is the per-user default (DEFAULT_KEY)."""
    if path:
        return Path(os.path.expanduser(str(path)))
    config = os.environ.get('XDG_CONFIG_HOME') or os.path.expanduser('~/.config')
    return Path(config) / DEFAULT_KEY


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b'trpo_robot key id\0' + key).digest()[:KEY_ID_BYTES]


def load_or_create_key(path='') -> bytes:
    """The key in ``path``, made first if there is none (owner-only: file 0600 in a 0700
    folder). A key that others can read, or that someone else owns, is refused: a secret
    shared with every local user authenticates nothing."""
    path = key_path(path)
    try:
        if not path.exists():
            _create_key(path)
        st = path.stat()
        text = path.read_text(encoding='ascii', errors='replace').strip()
    except OSError as e:
        raise KeyFileError(f'key file {path}: {e.strerror or e}') from None
    if st.st_mode & 0o077:
        raise KeyFileError(f'key file {path} is open to group or others (mode '
                           f'{stat.S_IMODE(st.st_mode):04o}): run chmod 600 {path}')
    if hasattr(os, 'getuid') and st.st_uid != os.getuid():
        raise KeyFileError(f'key file {path} belongs to uid {st.st_uid}, not to this user '
                           f'({os.getuid()}): copy it and chown it')
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b''
    if len(key) != KEY_BYTES:
        raise KeyFileError(f'key file {path} does not hold {KEY_BYTES} bytes as hex; move it '
                           'away and a new one is made (then copy it to every actor host)')
    return key


def _create_key(path: Path):
    """Write a fresh key so that a reader never sees half a file and two processes that
    start together (learner and actor) end up with the same key: written to a private
    temporary file, then linked to its name, which fails if the other was first."""
    if not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, mode=0o700)
            path.parent.chmod(0o700)  # mkdir's mode is masked by the umask
        except FileExistsError:
            pass  # the other process made it meanwhile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')  # 0600
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(secrets.token_hex(KEY_BYTES) + '\n')
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # made by the other process meanwhile: use that one
    finally:
        os.unlink(tmp)


class Keyring:
    """Signs with one key; accepts blobs signed with it or with any of ``accept``."""

    def __init__(self, key: bytes, accept=()):
        if len(key) < 16:
            raise KeyFileError('a signing key needs at least 16 bytes')
        self.key = bytes(key)
        self.key_id = key_id(self.key)
        self._keys = {key_id(k): bytes(k) for k in accept}
        self._keys[self.key_id] = self.key

    @classmethod
    def from_file(cls, path='', accept_files=()):
        return cls(load_or_create_key(path),
                   [load_or_create_key(p) for p in accept_files if p])

    def sign(self, payload, kind: bytes) -> bytes:
        header = _header(kind, self.key_id)
        mac = hmac.new(self.key, header, hashlib.sha256)
        mac.update(payload)
        return b''.join((header, mac.digest(), payload))

    def open(self, blob, kind: bytes) -> bytes:
        """The payload of a blob whose tag checks out, or AuthError saying why not."""
        view = memoryview(blob)
        if len(view) < ENVELOPE_BYTES or view[:len(MAGIC)] != MAGIC:
            raise AuthError('unsigned blob (no signature envelope)')
        header = bytes(view[:HEADER_BYTES])
        if header[len(MAGIC):len(MAGIC) + 1] != kind:
            raise AuthError(f'signed as kind {header[len(MAGIC):len(MAGIC) + 1]!r}, expected '
                            f'{kind!r}')
        if header[len(MAGIC) + 1] != FORMAT:
            raise AuthError(f'signature format {header[len(MAGIC) + 1]}, expected {FORMAT}')
        kid = header[len(MAGIC) + 2:]
        key = self._keys.get(kid)
        if key is None:
            raise AuthError(f'signed with key {kid.hex()}, which this node does not hold '
                            f'(it has {self.key_id.hex()})')
        mac = hmac.new(key, header, hashlib.sha256)
        mac.update(view[ENVELOPE_BYTES:])
        if not hmac.compare_digest(mac.digest(), bytes(view[HEADER_BYTES:ENVELOPE_BYTES])):
            raise AuthError(f'bad signature (key {kid.hex()}): altered or forged')
        return bytes(view[ENVELOPE_BYTES:])


def _header(kind: bytes, kid: bytes) -> bytes:
    if kind not in (POLICY, EPISODE):
        raise ValueError(f'unknown blob kind {kind!r}')
    return MAGIC + kind + bytes((FORMAT,)) + kid


def payload(blob) -> bytes:
    """The payload of a blob, signed or not, WITHOUT checking anything: for reading recorded
    or captured episodes offline. Nodes use Keyring.open."""
    view = memoryview(blob)
    if len(view) >= ENVELOPE_BYTES and view[:len(MAGIC)] == MAGIC:
        return bytes(view[ENVELOPE_BYTES:])
    return bytes(view)
