"""SIGINT and SIGTERM as a request to stop, without a lock in the signal handler.

Python runs a signal handler in the main thread, between two bytecodes of whatever that
thread is doing. A handler that calls ``threading.Event.set()`` while the main thread waits
on the same Event can land inside ``Event.wait`` at a moment it holds the Event's lock (a
plain, non-reentrant Lock): ``set()`` then waits for a lock its own thread holds, for
ever, and every later signal's handler joins it. With a thread busy in Python beside a
1 ms wait loop, 3 of 300 SIGINTs hung so; it fits the learner CI saw ignore
``ros2 launch``'s SIGINT and SIGTERM until SIGKILL (launch forwards a second SIGINT while
the first is being handled). Here the handler only appends to a list, which takes no lock, and
the main thread turns the request into the Event in its own time.
"""
import signal
import threading
import time

SLICE = 0.05
"""s the waiting thread sleeps between two looks: the stop request's latency, at most."""


class StopSignals:
    """Installs handlers for ``signals`` on enter (main thread only), restores the previous
    ones on exit. ``wait()`` stands in for ``event.wait()`` in the main thread's loop."""

    def __init__(self, event: threading.Event,
                 signals=(signal.SIGINT, signal.SIGTERM)):
        self.event = event
        self.signals = tuple(signals)
        self.received = []  # signal numbers, appended by the handler
        self._previous = {}

    def install(self):
        self._previous = {sig: signal.signal(sig, self._handler) for sig in self.signals}
        return self

    __enter__ = install

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def _handler(self, signum, frame):
        self.received.append(signum)  # no lock: see the module docstring

    @property
    def first(self) -> str:
        """Name of the first signal received, or ''."""
        return signal.Signals(self.received[0]).name if self.received else ''

    def wait(self, timeout: float) -> bool:
        """True once a signal came (the Event is then set) or another thread set the
        Event; False after ``timeout`` seconds otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if self.received:
                self.event.set()
            if self.event.is_set():  # reads a flag, takes no lock
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(SLICE, left))
