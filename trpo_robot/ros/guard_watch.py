"""GuardWatch: the actor's check that the command guard is still relaying to the driver.

The UR driver holds the guard's last relay forever, so a guard that dies or hangs while
the arm moves leaves it moving. The actor hears the guard's relays on the driver's command
topic and, when the guard owes one for too long, publishes zero there itself.

What a live guard owes (trpo_robot/robot/guard.py): a relay after every command, sent at
most one guard timeout of driver time later (a repeat of the command the driver holds is
relayed once per timeout). So each command opens a debt that only a relay *sent after it*
pays, and the watch counts from the oldest unpaid one.

Relays are dated by when the guard sent them (the older of DDS's source and receipt
stamps), never by when this process took them: an actor held by the host drains, when it
runs again, relays that a guard sent before it died, and counting them as news once gave a
dead guard a whole new window while the arm ran on (a fresh-clone `make test` beside a
benchmark, 2026-12-07). Across hosts the source stamp is the guard's clock: with clocks
apart by d, a relay looks d older or d newer. The receipt stamp bounds the second; the
first shortens the window by d, so keep the clocks synchronised (chrony) to well under
the window (check_hw's state age check fails long before).
"""
from collections import deque
import time

from std_msgs.msg import Float64MultiArray

from trpo_robot.ros import node_utils as U
from trpo_robot.ros.rclpy_internals import TakenSubscriptions


class GuardWatch:
    """Taken by the control thread at each publish (no executor, a few microseconds).

    Armed by the first relay heard: before it, discovery may not have matched this
    subscription with the guard's publisher yet. The actor's start-up waits for that first
    relay (RosBackend.guard_relays), sending zero for the guard to relay.

    silence: wall s a debt may stay unpaid before the guard counts as lost (two guard
    timeouts of driver time plus the host's slack).

    Not covered: a guard that dies while this actor sends nothing (held by the host, or
    in freedrive) after relaying all it was sent. Nothing is owed then, so the first
    command after the pause opens the window, and the arm runs on at the guard's last
    relay for that window beyond the pause. Owing the guard's timeout zero for the pause
    would close it, but a driver clock frozen through the pause owes no zero, and a clock
    that resumes just before this actor does races the guard's zero: a guard found lost
    falsely aborts an episode, so the watch does not try."""

    def __init__(self, node, driver_topic, dof, silence):
        self._rx = TakenSubscriptions(node, [(Float64MultiArray, driver_topic, U.QOS_COMMAND)])
        self._direct = node.create_publisher(Float64MultiArray, driver_topic, U.QOS_COMMAND)
        self._own = _publisher_gid(node, self._direct)
        self.silence, self._zero = silence, [0.0] * dof
        self._owed = deque()  # monotonic times from which a relay is owed, oldest first
        self._relayed = self._lost_at = 0.0
        self.lost = False
        self.lost_after = 0.0
        """Wall s the guard had owed a relay when it was last found lost."""
        self.fault = ''
        """Set when the guard is found lost; send_velocity raises it once."""

    def published(self) -> bool:
        """After each command to the guard: True when the guard has just been found lost
        (the zero is then on its way to the driver)."""
        now = time.monotonic()
        if self._relayed and not self.lost:  # armed, and not already lost
            self._owed.append(now)
        newest = self._newest_relay(now)
        if newest is not None:
            self._paid(newest)
        if self.lost or not self._owed:
            return False
        silent = now - self._owed[0]
        if silent <= self.silence:
            return False
        self._lose(now, silent)
        return True

    @property
    def relayed_once(self) -> bool:
        return self._relayed > 0.0

    def still_lost(self) -> str:
        """Why acting is refused while the guard has not relayed since it was lost."""
        return (f'the command guard has relayed nothing to {self._direct.topic_name} for '
                f'{(time.monotonic() - self._lost_at) * 1e3:.0f} ms of wall time, since it was '
                'found silent: it is dead or hung; the arm stays stopped')

    def _paid(self, sent):
        """A relay the guard sent at monotonic time ``sent``: it was alive then, so every
        debt older than that is paid."""
        self._relayed = max(self._relayed, sent)
        owed = self._owed
        while owed and owed[0] <= sent:
            owed.popleft()
        if self.lost and sent > self._lost_at:
            self.lost = False

    def _newest_relay(self, now):
        """When the newest relay taken now was sent, in monotonic time; None if none came.
        Our own zero comes back on this topic and is no relay."""
        newest = None
        wall = time.time_ns()
        while (taken := self._rx.take()) is not None:
            _, info = taken
            if _gid(info.get('publisher_gid')) == self._own:
                continue
            stamps = [s for s in (info.get('source_timestamp'), info.get('received_timestamp'))
                      if s]
            age = max(0.0, (wall - min(stamps)) * 1e-9) if stamps else 0.0
            sent = now - age
            newest = sent if newest is None else max(newest, sent)
        return newest

    def _lose(self, now, silent):
        self.lost, self._lost_at, self.lost_after = True, now, silent
        self._owed.clear()  # nothing more is owed until the guard speaks again
        self._direct.publish(Float64MultiArray(data=self._zero))
        self.fault = (f'the command guard relayed nothing to {self._direct.topic_name} for '
                      f'{silent * 1e3:.0f} ms of wall time while commands went to it: it '
                      'is dead or hung; zero sent to the driver directly')


def _gid(gid) -> bytes:
    """A publisher's gid as bytes without the zero padding some rmw layers add."""
    if gid is None:
        return b''
    data = gid.get('data', b'') if isinstance(gid, dict) else gid
    return bytes(data).rstrip(b'\0')


def _publisher_gid(node, publisher) -> bytes:
    """Our own publisher's gid, from the graph, where local endpoints are listed as they
    are created: what tells our zero, echoed back, from the guard's relays."""
    ours = [info for info in node.get_publishers_info_by_topic(publisher.topic_name)
            if info.node_name == node.get_name() and
            info.node_namespace == node.get_namespace()]
    if len(ours) != 1:
        raise RuntimeError(f'cannot tell our own zero on {publisher.topic_name} from the '
                           f"guard's relays: the graph lists {len(ours)} publishers of this "
                           'node there, not 1')
    return _gid(ours[0].endpoint_gid)
