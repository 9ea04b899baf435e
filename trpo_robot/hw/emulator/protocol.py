"""Dynamixel Protocol 2.0 framing, written from the protocol description: CRC-16, byte
stuffing, packet encoding and a streaming parser.

The emulator has its own implementation rather than dynamixel-sdk's, so that a test through
the emulator checks the SDK against an independent reading of the protocol instead of
against itself.
"""
from dataclasses import dataclass

HEADER = b'\xff\xff\xfd\x00'
BROADCAST_ID = 0xFE
MAX_LENGTH = 1024
"""Longest packet length field accepted (dynamixel-sdk's buffer size)."""

PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
REBOOT, CLEAR, STATUS = 0x08, 0x10, 0x55
SYNC_READ, SYNC_WRITE, FAST_SYNC_READ = 0x82, 0x83, 0x8A
BULK_READ, BULK_WRITE = 0x92, 0x93

_POLY = 0x8005


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _crc_table()


def crc16(data, crc=0) -> int:
    """The Dynamixel CRC: CRC-16 with polynomial 0x8005, initial value 0, not reflected."""
    for byte in data:
        crc = ((crc << 8) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload) -> bytes:
    """Insert 0xFD after every 0xFF 0xFF 0xFD in the instruction/parameter bytes, so that
    no header pattern can appear inside a packet."""
    out = bytearray()
    for byte in payload:
        out.append(byte)
        if byte == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return bytes(out)


def unstuff(payload) -> bytes:
    """Undo ``stuff``: drop the 0xFD that follows each 0xFF 0xFF 0xFD."""
    out = bytearray()
    i = 0
    while i < len(payload):
        byte = payload[i]
        out.append(byte)
        i += 1
        if (byte == 0xFD and len(out) >= 3 and out[-3] == 0xFF and out[-2] == 0xFF
                and i < len(payload) and payload[i] == 0xFD):
            i += 1
    return bytes(out)


def encode(packet_id: int, instruction: int, params=b'', error=None) -> bytes:
    """One packet, stuffed and with its CRC; ``error`` makes it a status packet."""
    body = bytes([instruction]) + (bytes([error]) if error is not None else b'') + bytes(params)
    body = stuff(body)
    length = len(body) + 2
    head = HEADER + bytes([packet_id, length & 0xFF, length >> 8])
    crc = crc16(head + body)
    return head + body + bytes([crc & 0xFF, crc >> 8])


def status(servo_id: int, error: int, params=b'') -> bytes:
    return encode(servo_id, STATUS, params, error)


@dataclass(frozen=True)
class Packet:
    """A received packet; ``params`` are unstuffed, ``crc_ok`` False for a damaged one."""

    id: int  # noqa: A003 - the protocol's name
    instruction: int
    params: bytes
    crc_ok: bool
    size: int
    """Bytes on the wire, header and CRC included."""


class PacketReader:
    """Turns a byte stream into packets, resynchronising on the header after garbage."""

    def __init__(self):
        self._buf = bytearray()
        self.discarded = 0
        """Bytes thrown away while looking for a header."""

    def feed(self, data) -> list[Packet]:
        self._buf += data
        packets = []
        while True:
            packet = self._next()
            if packet is None:
                return packets
            packets.append(packet)

    def reset(self):
        self.discarded += len(self._buf)
        self._buf.clear()

    def pending(self) -> int:
        return len(self._buf)

    def _next(self):
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            keep = 3 if buf.endswith(b'\xff\xff\xfd') else 2 if buf.endswith(b'\xff\xff') \
                else 1 if buf.endswith(b'\xff') else 0
            self.discarded += len(buf) - keep
            del buf[:len(buf) - keep]
            return None
        if start:
            self.discarded += start
            del buf[:start]
        if len(buf) < 7:
            return None
        length = buf[5] | (buf[6] << 8)
        if not 3 <= length <= MAX_LENGTH:
            self.discarded += 1
            del buf[:1]
            return self._next()
        size = 7 + length
        if len(buf) < size:
            return None
        frame = bytes(buf[:size])
        del buf[:size]
        crc_ok = crc16(frame[:-2]) == (frame[-2] | (frame[-1] << 8))
        body = unstuff(frame[7:-2])
        return Packet(frame[4], body[0] if body else 0, body[1:], crc_ok, size)
