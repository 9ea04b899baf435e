"""A Dynamixel servo emulator on a pseudo-terminal, for tests, benches and bring-up practice.

It is a test and simulation tool that lives in the hardware layer because it speaks the
hardware's protocol. It imports no MuJoCo and no twin: the joints behind its servos are
given to it (``physics.ArmPhysics``), and ``trpo_robot.dxl_emulator`` gives it the MuJoCo
twin of dxl_arm, stepped by the twin's own ``ArmStepper``. A machine that drives real
servos therefore needs neither MuJoCo nor the twin.

``trpo_robot.dxl_emulator.Emulator(link, ...).start()`` (this package's ``Emulator`` with
that physics) runs the server (``server.py``) as a child process by default, as a real
servo is another processor: the host's timing then includes none of the emulator's work,
and either side dying looks to the other as it would on a bus. ``thread=True`` runs it in
a thread of this process instead (about the same cycle time: the host's reads wait in
select, which releases the GIL). Tests steer it through JSON
lines (the child's stdin/stdout, or a pair of pipes): faults, unplugging, register peeks,
statistics.
"""
import json
import os
from pathlib import Path
import select
import subprocess
import sys
import threading
import time

START_TIMEOUT = 30.0
"""s to wait for the child to build its model and open the pty."""


class EmulatorError(RuntimeError):
    """The emulator process failed to start or to answer a control command."""


class Emulator:
    """Handle on an emulator; use as a context manager or start()/stop().

    By default the emulator is a child process (see the module docstring); ``thread=True``
    runs it in a thread of this process instead, for quick protocol tests where the
    cost of sharing one interpreter with the host does not matter.

    The physics comes from a subclass: ``entry`` names the module whose ``main`` a child
    runs (it takes the flags of ``args.py`` plus ``entry_flags()``), and ``physics()``
    builds it in this process for a thread.
    """

    entry = None
    """``python -m`` module of the emulator process."""

    def __init__(self, link, ids=(1, 2, 3), baud=1_000_000, faults=(), real_time_factor=1.0,
                 seed=0, priority=None, thread=False):
        """``priority``: run the emulator under SCHED_FIFO at this priority (benches whose
        host loop is real-time; a real servo is never starved by the host). ``seed``: of
        the random faults and of the physics' draws."""
        self.link = Path(link)
        self.ids = tuple(int(i) for i in ids)
        self.baud = int(baud)
        self.faults = tuple(faults)
        self.real_time_factor = float(real_time_factor)
        self.seed = int(seed)
        self.priority = priority
        self.thread = bool(thread)
        self.pty = None
        self._proc = self._thread = None
        self._send = self._receive = None  # binary file objects of the control channel

    def start(self) -> 'Emulator':
        if self.running:
            return self
        (self._start_thread if self.thread else self._start_process)()
        try:
            ready = self._reply(START_TIMEOUT)
        except EmulatorError:
            self.stop()
            raise
        self.pty = ready.get('pty')
        return self

    def entry_flags(self) -> list[str]:
        """Flags of the child's physics, after the bus flags."""
        return []

    def physics(self):
        """The ``ArmPhysics`` behind the servos, one joint a servo, for a thread."""
        raise NotImplementedError(f'{type(self).__name__} gives its emulator no physics')

    def _start_process(self):
        if self.entry is None:
            raise NotImplementedError(f'{type(self).__name__} names no emulator process')
        cmd = [sys.executable, '-m', self.entry, '--control',
               '--link', str(self.link), '--baud', str(self.baud),
               '--real-time-factor', str(self.real_time_factor), '--seed', str(self.seed),
               '--ids', *map(str, self.ids)]
        for fault in self.faults:
            cmd += ['--fault', fault]
        if self.priority is not None:
            cmd += ['--priority', str(int(self.priority))]
        cmd += self.entry_flags()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])
        env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      env=env)
        self._send, self._receive = self._proc.stdin, self._proc.stdout

    def _start_thread(self):
        from trpo_robot.hw.emulator.faults import apply_fault, Faults
        from trpo_robot.hw.emulator.server import EmulatorServer, ready_message
        faults = Faults()
        for text in self.faults:
            apply_fault(faults, text)
        commands_in, commands_out = os.pipe()
        replies_in, replies_out = os.pipe()
        server = EmulatorServer(self.link, self.physics(), self.ids, self.baud, faults,
                                self.real_time_factor, control=(commands_in, replies_out),
                                seed=self.seed)
        self._pipe_ends = (commands_in, replies_out)
        self._send = os.fdopen(commands_out, 'wb')
        self._receive = os.fdopen(replies_in, 'rb')
        self._thread = threading.Thread(
            target=server.serve, name='dxl-emulator', daemon=True,
            kwargs={'on_ready': lambda srv: srv.send_control(ready_message(srv))})
        self._thread.start()

    def stop(self) -> None:
        """Quit the emulator (kill a child that does not go) and remove the link."""
        if self._proc is None and self._thread is None:
            return
        try:
            if self.running:
                self._send.write(b'{"op": "quit"}\n')
                self._send.flush()
            if self._proc is not None:
                self._proc.wait(timeout=3)
            else:
                self._thread.join(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            self._close_channel()
            if self.link.is_symlink():
                self.link.unlink()

    def _close_channel(self):
        for stream in (self._send, self._receive):
            stream.close()
        if self._thread is not None:
            for fd in self._pipe_ends:
                os.close(fd)
        self._proc = self._thread = self._send = self._receive = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._thread is not None and self._thread.is_alive()

    # -- control ---------------------------------------------------------------------------

    def command(self, op: str, **fields) -> dict:
        """Send one control command and return the emulator's answer."""
        if not self.running:
            raise EmulatorError('the emulator is not running')
        self._send.write((json.dumps({'op': op, **fields}) + '\n').encode())
        self._send.flush()
        answer = self._reply(5.0)
        if not answer.get('ok'):
            raise EmulatorError(f'emulator refused {op}: {answer.get("error")}')
        return answer

    def inject(self, spec: str) -> None:
        """Add a fault, ``KIND=VALUE`` as for ``--fault`` (e.g. 'corrupt=3')."""
        self.command('fault', spec=spec)

    def clear_faults(self) -> None:
        self.command('clear')

    def unplug(self) -> None:
        self.command('unplug')

    def replug(self) -> str:
        return self.command('replug')['pty']

    def peek(self, servo_id: int, register: str) -> int:
        return self.command('peek', id=servo_id, reg=register)['value']

    def poke(self, servo_id: int, register: str, value: int) -> None:
        self.command('poke', id=servo_id, reg=register, value=value)

    def stats(self) -> dict:
        return self.command('stats')

    def hand(self, positions: dict) -> None:
        """Stand-in for the operator in a freedrive reset: move the limp (torque off)
        servos ``{servo id: joint angle, rad}`` there by hand; refused (EmulatorError) for
        a servo whose torque is on, since a hand cannot move a servo that holds."""
        self.command('hand', positions={str(k): float(v) for k, v in positions.items()})

    def _reply(self, timeout) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.running:
                code = None if self._proc is None else self._proc.poll()
                raise EmulatorError(f'the emulator did not answer (exit code {code})')
            ready, _, _ = select.select([self._receive], [], [], left)
            if ready:
                line = self._receive.readline()
                if line:
                    return json.loads(line)
