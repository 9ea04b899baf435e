"""A thin, checked layer over dynamixel-sdk: every transaction retried, counted, and turned
into a ``ServoFault`` that names the servo when it cannot be completed.

dynamixel-sdk reports failures as result codes and status-packet error bytes, raises
pyserial exceptions when the adapter disappears, and leaves its port marked busy after such
an exception. Everything above this module sees one exception type instead.
"""
from dataclasses import dataclass, field
import termios
import time

import dynamixel_sdk as sdk
import serial

from trpo_robot.hw import units
from trpo_robot.hw.control_table import ALERT_BIT, Register, status_error_text
from trpo_robot.robot.backend import BackendFault

PORT_ERRORS = (serial.SerialException, OSError, termios.error)
"""What pyserial raises when the device goes away (termios.error is not an OSError)."""
READ_SLICE = 0.0005
"""s a port read blocks in select waiting for bytes, instead of the SDK's busy poll."""


class ServoFault(BackendFault):
    """A Dynamixel servo (or the whole bus, ``servo_id`` None) failed: the message names
    it, the fault, and what to do about it."""

    def __init__(self, servo_id, fault, advice=''):
        self.servo_id = servo_id
        self.fault = fault
        self.advice = advice
        who = 'Dynamixel bus' if servo_id is None else f'Dynamixel servo {servo_id}'
        super().__init__(f'{who}: {fault}' + (f'; {advice}' if advice else ''))


class WriteRefused(ServoFault):
    """The servo answered a write with an error (``error`` is the status error byte)."""

    def __init__(self, servo_id, register: Register, error: int, advice=''):
        self.register, self.error = register, error
        super().__init__(servo_id, f'write of {register.name} ({register.address}) refused: '
                         f'{status_error_text(error)}', advice)


@dataclass
class BusStats:
    """Counters since the bus was opened; retries include every repeated attempt."""

    transactions: int = 0
    retries: int = 0
    timeouts: int = 0
    corrupt: int = 0
    alerts: dict = field(default_factory=dict)
    """servo id -> status packets seen with the hardware alert bit set."""


class _Port(sdk.PortHandler):
    """PortHandler with the reply timeout computed from the configured USB latency timer
    (the SDK hard-codes 16 ms, so a lost reply costs 34 ms even on a 1 ms adapter), and
    reads that block in select for a moment instead of spinning: the SDK polls with
    timeout 0, which burns a core that a shared machine (or the emulator) needs."""

    def __init__(self, name, latency_timer_ms):
        super().__init__(name)
        self.latency_timer_ms = float(latency_timer_ms)

    def setPacketTimeout(self, packet_length):  # noqa: N802 - SDK's name
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = (self.tx_time_per_byte * packet_length
                               + 2.0 * self.latency_timer_ms + 2.0)

    def setupPort(self, cflag_baud):  # noqa: N802 - SDK's name
        ok = super().setupPort(cflag_baud)
        self.ser.timeout = READ_SLICE
        return ok


class Bus:
    """One serial port, Protocol 2.0, with retries on lost or corrupted replies."""

    def __init__(self, port: str, baud: int, latency_timer_ms: float = 16.0, retries: int = 2):
        self.port_name, self.baud = port, int(baud)
        self.retries = int(retries)
        self.latency_timer_ms = float(latency_timer_ms)
        self.stats = BusStats()
        self._port = None
        self._ph = sdk.PacketHandler(2.0)
        self._sync_reads, self._sync_writes = {}, {}

    # -- port ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def open(self) -> None:
        port = _Port(self.port_name, self.latency_timer_ms)
        port.baudrate = self.baud
        try:
            ok = port.openPort()
        except PORT_ERRORS as e:
            raise ServoFault(None, f'cannot open {self.port_name}: {_short(e)}',
                             'check the device path, that the adapter is plugged in, and '
                             'that this user may open it (dialout group)') from None
        if not ok:
            raise ServoFault(None, f'baud rate {self.baud} is not one dynamixel-sdk supports')
        self._port = port
        self._sync_reads.clear()
        self._sync_writes.clear()

    def close(self) -> None:
        """Close the port; never raises (it is called on the way out of failures)."""
        port, self._port = self._port, None
        if port is not None and port.ser is not None:
            try:
                port.ser.close()
            except PORT_ERRORS:
                pass

    def drain(self) -> None:
        """Let late bytes of a failed transaction arrive, then drop them, so that they
        cannot be read as the reply to the next request."""
        time.sleep(max(0.001, self.latency_timer_ms / 1000.0))
        self._io(lambda: self._port.clearPort())

    # -- transactions -------------------------------------------------------------------

    def ping(self, servo_id: int) -> int:
        """Model number of the servo; ServoFault if it never answers."""
        model, error = self._retry(servo_id, 'ping', lambda: _pack(
            *self._ph.ping(self._port, servo_id)))
        self._note_alert(servo_id, error)
        return model

    def read(self, servo_id: int, reg: Register) -> int:
        data, error = self._retry(servo_id, f'read of {reg.name}', lambda: _sized(
            reg.size, *self._ph.readTxRx(self._port, servo_id, reg.address, reg.size)))
        self._note_alert(servo_id, error)
        if error & 0x7F:
            raise ServoFault(servo_id, f'read of {reg.name} refused: {status_error_text(error)}')
        return units.from_bytes(data, reg.size, reg.signed)

    def write(self, servo_id: int, reg: Register, value: int, advice='') -> None:
        """Write and check the status packet; a refusal raises WriteRefused."""
        data = units.to_bytes(value, reg.size)
        _, error = self._retry(servo_id, f'write of {reg.name}', lambda: _pack(
            None, *self._ph.writeTxRx(self._port, servo_id, reg.address, reg.size, data)))
        self._note_alert(servo_id, error)
        if error & 0x7F:
            raise WriteRefused(servo_id, reg, error, advice)

    def broadcast_write(self, reg: Register, value: int) -> None:
        """One unacknowledged write to every servo (the safe-stop path: it needs no reply
        from a servo that may be the one failing)."""
        data = units.to_bytes(value, reg.size)
        self._io(lambda: self._ph.writeTxOnly(self._port, sdk.BROADCAST_ID, reg.address,
                                              reg.size, data))

    def reboot(self, servo_id: int) -> None:
        self._retry(servo_id, 'reboot', lambda: _pack(
            None, *self._ph.reboot(self._port, servo_id)))

    def sync_write(self, reg: Register, values: dict) -> None:
        """One Sync Write packet setting ``reg`` on every servo in ``values`` (no reply)."""
        group = self._sync_writes.get(reg.address)
        if group is None or set(group.data_dict) != set(values):
            group = sdk.GroupSyncWrite(self._port, self._ph, reg.address, reg.size)
            for servo_id in values:
                group.addParam(servo_id, [0] * reg.size)
            self._sync_writes[reg.address] = group
        for servo_id, value in values.items():
            group.changeParam(servo_id, units.to_bytes(value, reg.size))
        result = self._io(group.txPacket)
        self.stats.transactions += 1
        if result != sdk.COMM_SUCCESS:
            raise ServoFault(None, f'sync write of {reg.name} failed: {_result_text(result)}')

    def sync_read(self, start: int, length: int, ids) -> dict:
        """One Sync Read of ``length`` bytes at ``start``: {id: (bytes, status error byte)}.

        The status packets are received with readRx rather than GroupSyncRead.rxPacket,
        which drops each packet's error byte, and with it the hardware alert bit. A lost or
        corrupted reply repeats the whole sync read; after ``retries`` repeats the servo
        whose reply failed is named in the ServoFault.
        """
        ids = tuple(ids)
        group = self._sync_read_group(start, length, ids)
        for attempt in range(self.retries + 1):
            replies, failed, result = self._sync_read_once(group, ids, length)
            if failed is None:
                for servo_id, (_, error) in replies.items():
                    self._note_alert(servo_id, error)
                return replies
            self._count_failure(result, attempt)
        raise ServoFault(failed, f'no valid reply to sync read of {length} bytes at '
                         f'{start}: {_result_text(result)} ({self.retries + 1} attempts)',
                         _advice(result))

    def _sync_read_group(self, start, length, ids):
        key = (start, length, ids)
        group = self._sync_reads.get(key)
        if group is None:
            group = sdk.GroupSyncRead(self._port, self._ph, start, length)
            for servo_id in ids:
                group.addParam(servo_id)
            self._sync_reads[key] = group
        return group

    def _sync_read_once(self, group, ids, length):
        self.stats.transactions += 1
        result = self._io(group.txPacket)
        if result != sdk.COMM_SUCCESS:
            return {}, ids[0], result
        replies = {}
        for servo_id in ids:
            data, result, error = self._io(
                lambda: self._ph.readRx(self._port, servo_id, length))
            if result == sdk.COMM_SUCCESS and len(data) != length:
                result = sdk.COMM_RX_CORRUPT  # a status packet without the data asked for
            if result != sdk.COMM_SUCCESS:
                return replies, servo_id, result
            replies[servo_id] = (bytes(data), error)
        return replies, None, sdk.COMM_SUCCESS

    # -- plumbing -----------------------------------------------------------------------

    def _retry(self, servo_id, what, call):
        """Run one request/reply transaction, repeating it after a lost or corrupt reply."""
        for attempt in range(self.retries + 1):
            self.stats.transactions += 1
            value, result, error = self._io(call)
            if result == sdk.COMM_SUCCESS:
                return value, error
            self._count_failure(result, attempt)
        raise ServoFault(servo_id, f'no valid reply to {what}: {_result_text(result)} '
                         f'({self.retries + 1} attempts)', _advice(result))

    def _count_failure(self, result, attempt):
        if result == sdk.COMM_RX_CORRUPT:
            self.stats.corrupt += 1
        else:
            self.stats.timeouts += 1
        if attempt < self.retries:
            self.stats.retries += 1
            self.drain()

    def _io(self, call):
        """Call into the SDK with the port's exceptions turned into a bus ServoFault."""
        if self._port is None:
            raise ServoFault(None, f'port {self.port_name} is not open')
        try:
            return call()
        except PORT_ERRORS as e:
            raise ServoFault(None, f'serial port {self.port_name} lost: {_short(e)}',
                             'the adapter was unplugged or lost power; plug it back in '
                             'and reconnect') from None
        finally:
            self._port.is_using = False  # the SDK leaves it set when a read raises

    def _note_alert(self, servo_id, error):
        if error & ALERT_BIT:
            self.stats.alerts[servo_id] = self.stats.alerts.get(servo_id, 0) + 1


def _pack(value, result, error):
    """SDK calls return (value, result, error); reorder for _retry."""
    return value, result, error


def _sized(size, data, result, error):
    """A read reply whose data has the wrong length is a late reply to an earlier request
    from the same servo (the SDK matches replies by id only): count it as corrupt and ask
    again. A refusal (error code set) carries no data and is passed on."""
    if result == sdk.COMM_SUCCESS and not error & 0x7F and len(data) != size:
        result = sdk.COMM_RX_CORRUPT
    return data, result, error


def _result_text(result) -> str:
    return {sdk.COMM_RX_TIMEOUT: 'timed out', sdk.COMM_RX_CORRUPT: 'corrupted reply',
            sdk.COMM_TX_FAIL: 'transmit failed', sdk.COMM_PORT_BUSY: 'port busy',
            sdk.COMM_RX_FAIL: 'receive failed', sdk.COMM_TX_ERROR: 'bad instruction packet',
            }.get(result, f'result {result}')


def _advice(result) -> str:
    if result == sdk.COMM_RX_CORRUPT:
        return ('check the cable and connectors, the bus termination, and that no other '
                'program uses the port')
    return 'check its power, cable, ID and baud rate'


def _short(error) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
