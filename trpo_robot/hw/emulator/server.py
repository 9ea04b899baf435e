"""The emulator process: a pseudo-terminal that answers like a chain of X-series servos.

One loop, one thread: wait in select for bytes from the host, a control command, the next
status packet due, or the next watchdog deadline; catch the physics up to the present;
handle what arrived. Physics is given (an ``ArmPhysics``: the MuJoCo twin of dxl_arm,
from ``trpo_robot.dxl_emulator``) and stepped in real time (scaled by
``real_time_factor``), so a velocity written over the bus moves a simulated arm whose
position the next read returns. Wire time is modelled from the baud rate (10 bits per
byte) plus each servo's Return Delay Time, so cycle times mean what they would on a bus.

Run it with ``trpo-robot dxl-emulator --link PATH``, or from Python through
``trpo_robot.dxl_emulator.Emulator``, which starts it as a child process (JSON lines over
its stdin/stdout: ``--control``) or, with ``thread=True``, in a thread of the calling
process (the same JSON lines over a pair of pipes).
"""
import faulthandler
import heapq
import json
import os
import random
import select
import signal
import sys
import time
import tty

import numpy as np

from trpo_robot.hw import units
from trpo_robot.hw.control_table import CRC_ERROR, INSTRUCTION_ERROR
from trpo_robot.hw.emulator import protocol as p
from trpo_robot.hw.emulator.faults import apply_fault, FaultError, Faults
from trpo_robot.hw.emulator.physics import ArmPhysics
from trpo_robot.hw.emulator.servo import Servo

MAX_IDLE = 0.005
"""Longest select wait, wall s: physics and watchdogs are looked at least this often."""
STALE_INPUT = 0.05
"""Wall s after which half a packet is thrown away (a servo resets its parser too)."""
TORQUE_CONSTANT = 4.1 / 2.3
"""N m per A (XM430-W350: 4.1 N m stall torque at 2.3 A, 12 V), for Present Current."""


class EmulatorServer:
    """Servos on a pty; see the module docstring. ``serve()`` runs until quit or signal."""

    def __init__(self, link, physics: ArmPhysics, ids=(1, 2, 3), baud=1_000_000,
                 faults: Faults | None = None, real_time_factor=1.0, control=None, seed=0):
        """``physics``: one joint a servo, in the order of ``ids`` (sorted).
        ``control``: (input fd, output fd) of a JSON-lines control channel, or None.
        ``seed``: of the random faults."""
        if real_time_factor <= 0:
            raise ValueError(f'real_time_factor must be > 0, got {real_time_factor}')
        if len(physics.positions()) != len(set(ids)):
            raise ValueError(f'the physics has {len(physics.positions())} joints for '
                             f'{len(set(ids))} servos')
        self.link, self.baud, self.rtf = str(link), int(baud), float(real_time_factor)
        self.faults = faults or Faults()
        self.servos = {i: Servo(i, self.faults.firmware.get(i, 46)) for i in sorted(ids)}
        for servo_id, bits in self.faults.hw_errors.items():
            if servo_id in self.servos:
                self.servos[servo_id].raise_hardware_error(bits)
        self.order = list(self.servos)
        self.physics = physics
        self.control = control
        self.rng = random.Random(seed)
        self.reader = p.PacketReader()
        self.master = self.slave = None
        self.pty_name = None
        self.outbox = []  # heap of (wall time due, sequence, bytes)
        self._seq = 0
        self._control_buf = b''
        self._last_input = 0.0
        self._bus_free = 0.0  # wall time the emulated wire is free again
        self.counts = {'instructions': 0, 'replies': 0, 'dropped': 0, 'corrupted': 0,
                       'stalled': 0, 'bad_crc': 0, 'sync_writes': 0, 'refused': 0,
                       'unsent': 0}
        self.stopped_at = {}
        self.loop_gap_max = 0.0
        """Longest wall s between two passes of the loop (normally <= MAX_IDLE plus the
        work): more means the emulator itself was held up, as a real servo never is."""
        self._last_pass = None
        self.running = False
        self._wall0 = time.monotonic()
        self._refresh_present()

    # -- time --------------------------------------------------------------------------

    def sim_time(self, wall=None) -> float:
        return ((time.monotonic() if wall is None else wall) - self._wall0) * self.rtf

    def _wall(self, sim: float) -> float:
        return self._wall0 + sim / self.rtf

    # -- pty ---------------------------------------------------------------------------

    def plug(self) -> str:
        """Open a fresh pty and point the link at its slave side."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing, before the host opens it
        os.set_blocking(self.master, False)
        self.pty_name = os.ttyname(self.slave)
        tmp = f'{self.link}.tmp{os.getpid()}'
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.pty_name, tmp)
        os.replace(tmp, self.link)
        self.reader = p.PacketReader()
        return self.pty_name

    def unplug(self) -> None:
        """As if the USB cable were pulled: the device and its name disappear."""
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None
        self.outbox.clear()
        if os.path.islink(self.link):
            os.unlink(self.link)

    # -- main loop ---------------------------------------------------------------------

    def serve(self, on_ready=None) -> None:
        self.plug()
        self.running = True
        if on_ready:
            on_ready(self)
        try:
            while self.running:
                self._once()
        finally:
            self.unplug()

    def _once(self):
        now = time.monotonic()
        if self._last_pass is not None:
            self.loop_gap_max = max(self.loop_gap_max, now - self._last_pass)
        self._last_pass = now
        self._maybe_unplug()
        fds = [self.master] if self.master is not None else []
        if self.control:
            fds.append(self.control[0])
        readable, _, _ = select.select(fds, [], [], self._timeout(time.monotonic()))
        self._advance_physics()  # the present, before any packet reads it
        if self.master is not None and self.master in readable:
            self._receive()
        if self.control and self.control[0] in readable:
            self._control_input()
        self._flush()

    def _timeout(self, now):
        due = [now + MAX_IDLE]
        if self.outbox:
            due.append(self.outbox[0][0])
        deadlines = [s.watchdog_deadline() for s in self.servos.values()]
        # a watchdog fires on the first physics step past its deadline
        due += [self._wall(d + self.physics.dt) for d in deadlines if d is not None]
        return max(0.0, min(due) - now)

    def _maybe_unplug(self):
        after = self.faults.unplug_after
        if after is not None and self.master is not None and \
                time.monotonic() - self._wall0 >= after:
            self.faults.unplug_after = None
            self.unplug()

    # -- physics -----------------------------------------------------------------------

    def _advance_physics(self):
        """Step the physics up to the present, firing watchdogs at their own times."""
        target = self.sim_time()
        dt = self.physics.dt
        while self.physics.time + dt <= target:
            for servo in self.servos.values():
                servo.check_watchdog(self.physics.time)
            self.physics.set_limp([not s.torque for s in self.servos.values()])
            self.physics.step(self._commands())
            self._refresh_present()
            self._note_stops()

    def hand(self, positions: dict) -> None:
        """The operator's hand: move servos (id -> joint angle, rad, as Present Position
        reads it) whose torque is off, as a person moves a limp arm in a freedrive reset.
        A servo that holds (torque on) cannot be moved: ValueError, nothing moves."""
        targets = {int(i): float(q) for i, q in positions.items()}
        holding = [i for i in targets if self.servos[i].torque]
        if holding:
            raise ValueError(f'servos {holding} have torque on: a hand cannot move them')
        self._advance_physics()
        for servo_id, q in targets.items():
            self.physics.move(self.order.index(servo_id), q)
        self._refresh_present()

    def _commands(self):
        raw = [s.velocity_command() for s in self.servos.values()]
        return units.raw_to_velocity(np.array(raw, float))

    def _refresh_present(self):
        q, v = self.physics.readings()
        amps = self.physics.efforts() / TORQUE_CONSTANT
        tick = int(self.physics.time * 1000) % 32768
        for k, servo in enumerate(self.servos.values()):
            servo.set('present_position', int(units.position_to_raw(q[k])))
            servo.set('present_velocity', int(np.rint(v[k] / units.VELOCITY_UNIT)))
            servo.set('present_current', int(np.rint(amps[k] / units.CURRENT_UNIT)))
            servo.set('realtime_tick', tick)
            servo.set('moving', int(abs(v[k]) > units.VELOCITY_UNIT))

    def _note_stops(self):
        """Record when a servo stopped by its watchdog has come to rest (for the bench)."""
        v = self.physics.velocities()
        for k, (servo_id, servo) in enumerate(self.servos.items()):
            if servo.tripped_at is None or self.stopped_at.get(servo_id, -1) >= servo.tripped_at:
                continue
            if abs(v[k]) < 0.5 * units.VELOCITY_UNIT:
                self.stopped_at[servo_id] = self.physics.time

    # -- bus -----------------------------------------------------------------------------

    def _receive(self):
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # the slave side is gone; keep serving for a reopen
            return
        now = time.monotonic()
        if self.reader.pending() and now - self._last_input > STALE_INPUT:
            self.reader.reset()
        self._last_input = now
        for packet in self.reader.feed(data):
            self._handle(packet, now)

    def _handle(self, packet: p.Packet, now: float):
        self.counts['instructions'] += 1
        if self._drop():
            self.counts['dropped'] += 1
            return
        if not packet.crc_ok:
            self.counts['bad_crc'] += 1
            servo = self._alive(packet.id)
            if servo is not None:
                self._reply(self._on_wire(now, packet.size), [(servo, CRC_ERROR, b'')], None)
            return
        t = self.sim_time(now)
        handler = _HANDLERS.get(packet.instruction, EmulatorServer._unsupported)
        replies = handler(self, packet, t)
        end = self._on_wire(now, packet.size)
        if replies:
            self._reply(end, replies, packet.instruction)

    def _on_wire(self, now, n_bytes):
        """When a packet that reached the pty at ``now`` has finished crossing the
        emulated wire: after whatever still occupies it, plus its own length."""
        self._bus_free = max(now, self._bus_free) + self._wire(n_bytes)
        return self._bus_free

    def _drop(self) -> bool:
        if self.faults.drop > 0:
            self.faults.drop -= 1
            return True
        return self.faults.drop_rate > 0 and self.rng.random() < self.faults.drop_rate

    def _alive(self, servo_id):
        if servo_id in self.faults.dead:
            return None
        return self.servos.get(servo_id)

    def _targets(self, packet):
        """Servos an instruction addresses (all alive ones for the broadcast id)."""
        if packet.id == p.BROADCAST_ID:
            return [s for i, s in self.servos.items() if i not in self.faults.dead]
        servo = self._alive(packet.id)
        return [servo] if servo is not None else []

    def _reply(self, start, replies, instruction):
        """Queue status packets one after another on the wire, each after its servo's
        Return Delay Time; an injected adapter latency or stall delays their delivery but
        does not occupy the wire."""
        late = self.faults.latency_ms / 1000.0
        if self.faults.stall > 0:
            late += self.faults.stall
            self.faults.stall = 0.0
            self.counts['stalled'] += 1
        t = start
        for servo, code, params in replies:
            if not _answers(servo, instruction):
                continue
            frame = p.status(servo.id, servo.status_error(code), params)
            t += servo.get('return_delay_time') * units.RETURN_DELAY_UNIT + self._wire(len(frame))
            self._queue(t + late, self._maybe_corrupt(frame))
        self._bus_free = max(self._bus_free, t)

    def _maybe_corrupt(self, frame: bytes) -> bytes:
        hit = self.faults.corrupt > 0 or (self.faults.corrupt_rate > 0 and
                                          self.rng.random() < self.faults.corrupt_rate)
        if not hit:
            return frame
        self.faults.corrupt = max(0, self.faults.corrupt - 1)
        self.counts['corrupted'] += 1
        return frame[:-1] + bytes([frame[-1] ^ 0x5A])

    def _queue(self, due, frame):
        self._seq += 1
        heapq.heappush(self.outbox, (due, self._seq, frame))

    def _flush(self):
        now = time.monotonic()
        while self.outbox and self.outbox[0][0] <= now:
            _, _, frame = heapq.heappop(self.outbox)
            if self.master is None:
                continue
            try:
                os.write(self.master, frame)
                self.counts['replies'] += 1
            except OSError:  # buffer full (nobody reading) or closed
                self.counts['unsent'] += 1

    def _wire(self, n_bytes):
        return units.wire_seconds(n_bytes, self.baud)

    # -- instructions ------------------------------------------------------------------

    def _ping(self, packet, t):
        out = []
        for servo in self._targets(packet):
            servo.heard(t)
            params = bytes(units.to_bytes(servo.get('model_number'), 2)
                           + [servo.get('firmware_version')])
            out.append((servo, 0, params))
        return out

    def _read(self, packet, t):
        if packet.id == p.BROADCAST_ID or len(packet.params) != 4:
            return self._bad_length(packet, t)
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        out = []
        for servo in self._targets(packet):
            servo.heard(t)
            code, data = servo.read(address, length)
            out.append((servo, code, data))
        return out

    def _write(self, packet, t):
        if len(packet.params) < 3:
            return self._bad_length(packet, t)
        address, data = _u16(packet.params, 0), packet.params[2:]
        out = []
        for servo in self._targets(packet):
            servo.heard(t)
            code = servo.write(address, data, t)
            self.counts['refused'] += bool(code)
            out.append((servo, code, b''))
        return out if packet.id != p.BROADCAST_ID else []

    def _sync_read(self, packet, t):
        if len(packet.params) < 5:
            return []
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        out = []
        for servo_id in packet.params[4:]:
            servo = self._alive(servo_id)
            if servo is None:
                continue
            servo.heard(t)
            code, data = servo.read(address, length)
            out.append((servo, code, data))
        return out

    def _sync_write(self, packet, t):
        self.counts['sync_writes'] += 1
        if len(packet.params) < 4:
            return []
        address, length = _u16(packet.params, 0), _u16(packet.params, 2)
        body = packet.params[4:]
        for k in range(0, len(body) - length, length + 1):
            servo = self._alive(body[k])
            if servo is None:
                continue
            servo.heard(t)
            code = servo.write(address, body[k + 1:k + 1 + length], t)
            self.counts['refused'] += bool(code)
        return []

    def _reboot(self, packet, t):
        out = []
        for servo in self._targets(packet):
            out.append((servo, 0, b''))
            servo.reboot(t)
        return out if packet.id != p.BROADCAST_ID else []

    def _factory_reset(self, packet, t):
        option = packet.params[0] if packet.params else 0xFF
        out = []
        for servo in self._targets(packet):
            out.append((servo, 0, b''))
            servo.factory_reset(option, t)
        return out if packet.id != p.BROADCAST_ID else []

    def _unsupported(self, packet, t):
        """Bulk/fast/registered instructions are not modelled: an addressed servo says
        Instruction Error, a broadcast goes unanswered (as the SDK then times out)."""
        if packet.instruction == p.STATUS or packet.id == p.BROADCAST_ID:
            return []
        return [(s, INSTRUCTION_ERROR, b'') for s in self._targets(packet)]

    def _bad_length(self, packet, t):
        return [(s, 5, b'') for s in self._targets(packet)] if packet.id != p.BROADCAST_ID \
            else []

    # -- control channel (tests and benches) -----------------------------------------

    def _control_input(self):
        chunk = os.read(self.control[0], 65536)
        if not chunk:
            self.running = False
            return
        self._control_buf += chunk
        while b'\n' in self._control_buf:
            line, self._control_buf = self._control_buf.split(b'\n', 1)
            self.send_control(self.command(json.loads(line)))

    def send_control(self, message: dict) -> None:
        os.write(self.control[1], (json.dumps(message) + '\n').encode())

    def command(self, message: dict) -> dict:
        """One control command (see Emulator for the client side); never raises."""
        op = message.get('op')
        try:
            result = _CONTROL[op](self, message)
        except KeyError as e:
            return {'ok': False, 'error': f'unknown op or field: {e}'}
        except (FaultError, ValueError) as e:
            return {'ok': False, 'error': str(e)}
        return {'ok': True, **(result or {})}

    def _op_fault(self, message):
        apply_fault(self.faults, message['spec'])
        for servo_id, bits in self.faults.hw_errors.items():
            if servo_id in self.servos:
                self.servos[servo_id].raise_hardware_error(bits)
        self.faults.hw_errors = {}

    def _op_clear(self, message):
        self.faults = Faults()
        for servo in self.servos.values():
            servo.persistent_error = 0

    def _op_peek(self, message):
        servo = self.servos[int(message['id'])]
        return {'value': servo.get(message['reg'])}

    def _op_poke(self, message):
        self.servos[int(message['id'])].set(message['reg'], int(message['value']))

    def _op_hand(self, message):
        self.hand(message['positions'])

    def _op_stats(self, message):
        servos = {}
        for k, (servo_id, servo) in enumerate(self.servos.items()):
            servos[str(servo_id)] = {
                'torque': servo.torque, 'bus_watchdog': servo.get('bus_watchdog'),
                'goal_velocity': servo.get('goal_velocity'),
                'hardware_error': servo.hardware_error,
                'last_instruction': servo.last_instruction, 'tripped_at': servo.tripped_at,
                'stopped_at': self.stopped_at.get(servo_id),
                'position': float(self.physics.positions()[k]),
                'velocity': float(self.physics.velocities()[k])}
        return {'counts': dict(self.counts), 'sim_time': self.sim_time(),
                'loop_gap_max': self.loop_gap_max,
                'plugged': self.master is not None, 'servos': servos,
                'twin': self.physics.drawn}

    def _op_unplug(self, message):
        self.unplug()

    def _op_replug(self, message):
        return {'pty': self.plug()}

    def _op_quit(self, message):
        self.running = False


_HANDLERS = {p.PING: EmulatorServer._ping, p.READ: EmulatorServer._read,
             p.WRITE: EmulatorServer._write, p.SYNC_READ: EmulatorServer._sync_read,
             p.SYNC_WRITE: EmulatorServer._sync_write, p.REBOOT: EmulatorServer._reboot,
             p.FACTORY_RESET: EmulatorServer._factory_reset}
_CONTROL = {'fault': EmulatorServer._op_fault, 'clear': EmulatorServer._op_clear,
            'peek': EmulatorServer._op_peek, 'poke': EmulatorServer._op_poke,
            'stats': EmulatorServer._op_stats, 'hand': EmulatorServer._op_hand,
            'unplug': EmulatorServer._op_unplug,
            'replug': EmulatorServer._op_replug, 'quit': EmulatorServer._op_quit}


def _answers(servo, instruction) -> bool:
    """Status Return Level: 0 answers pings only, 1 also reads, 2 everything."""
    level = servo.get('status_return_level')
    return (level >= 2 or instruction == p.PING
            or (level == 1 and instruction in (p.READ, p.SYNC_READ)))


def _u16(data, offset):
    return data[offset] | (data[offset + 1] << 8)


# -- the emulator process -------------------------------------------------------------------

def ready_message(server) -> dict:
    return {'ok': True, 'ready': True, 'pty': server.pty_name}


def run(server: EmulatorServer, priority=None, announce=print) -> int:
    """Serve until interrupted; with a control channel, say ready on it instead of
    ``announce``-ing. The emulator process's main path (``trpo_robot.dxl_emulator``):
    it sets the scheduler and the signal handlers of the whole process."""
    if priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except (AttributeError, OSError) as e:
            print(f'dxl-emulator: SCHED_FIFO {priority} not available ({e}); running '
                  'with normal scheduling', file=sys.stderr)

    def ready(srv):
        if srv.control:
            srv.send_control(ready_message(srv))
        else:
            announce(f'Dynamixel emulator: ids {list(srv.servos)} at {srv.baud} bit/s on '
                     f'{srv.pty_name}, linked at {srv.link} (Ctrl-C to stop); twin '
                     f'conditions: {json.dumps(srv.physics.drawn)}')
    # Ctrl-C, a kill and a hang-up end the loop between passes (select wakes at least every
    # MAX_IDLE), never by an exception raised wherever the loop happens to be; the link is
    # removed on the way out. SIGUSR1 prints every thread's stack, for a stop that hangs.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: setattr(server, 'running', False))
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        server.serve(ready)
    except KeyboardInterrupt:
        pass
    return 0
