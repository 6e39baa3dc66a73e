"""Which PUBACK may go out when: the packet ids of one session, across its connections.

A packet id names a message only while the broker holds it unacknowledged; once it has our
PUBACK it may give the id to another message. So a PUBACK sent at the wrong moment does not
just repeat itself, it acknowledges a message that is not yet taken, and a crash then loses it.
Three rules keep every PUBACK on the message it was meant for:

1. A PUBACK answers a PUBLISH of the *current connection*. After a reconnect with the session
   present, the broker sends every message it still holds for us again (DUP set, same id). An
   id taken while disconnected, or taken before its copy came again, waits for that copy:
   acked earlier, the broker could free the id, reuse it, and our answer to the late copy
   would acknowledge the reused one.
2. A DUP copy of an id we hold, of which this connection has not yet seen as many copies as we
   hold, is the resend of one we already have: not passed on (the pipeline has it).
3. Anything else is a new message, even under an id we hold: Mosquitto 2.0.11, on a PUBACK,
   moves up to Receive Maximum queued messages into flight (`db__message_delete_outgoing`
   counts from the acknowledged message's position, not from how many are in flight), so with
   a backlog past 65,535 its ids, given at queueing, repeat while in flight. The broker
   removes the oldest in-flight message of an id first, and we acknowledge an id's messages in
   the order they arrived, so counting per id is enough.

A new session (CONNACK without "session present") voids every id: `new_session()`.
"""

from __future__ import annotations

from collections.abc import Callable


class InFlight:
    def __init__(self, send: Callable[[int], object]) -> None:
        self._send = send  # puts one PUBACK on the wire
        self.unacked = 0  # messages received and not yet acknowledged
        self._held: dict[int, int] = {}  # id -> such messages
        self._resends_due: dict[int, int] = {}  # id -> held ones this connection did not resend yet
        self._taken: dict[int, int] = {}  # id -> taken, waiting for a copy on this connection
        self._credit: dict[int, int] = {}  # id -> copies this connection brought, minus PUBACKs
        self._connected = False

    def new_session(self) -> None:
        """The broker has no session for us: every id we knew is void."""
        self._held.clear()
        self._resends_due.clear()
        self._taken.clear()
        self._credit.clear()
        self.unacked = 0

    def connected(self) -> None:
        """A connection is up (after `new_session` if the session was not present): whatever
        we still hold comes again on it."""
        self._resends_due = dict(self._held)
        self._credit.clear()
        self._connected = True

    def disconnected(self) -> None:
        self._connected = False
        self._credit.clear()

    def arrived(self, mid: int, dup: bool) -> bool:
        """A QoS 1 PUBLISH with id `mid`: True if it is a new message to pass on, False if it
        is the resend of one we hold."""
        self._credit[mid] = self._credit.get(mid, 0) + 1
        due = self._resends_due.get(mid, 0)
        resend = dup and due > 0
        if resend:
            if due > 1:
                self._resends_due[mid] = due - 1
            else:
                del self._resends_due[mid]
        else:
            self._held[mid] = self._held.get(mid, 0) + 1
            self.unacked += 1
        if mid in self._taken:
            self._flush(mid)
        return not resend

    def taken(self, mid: int) -> None:
        """Every reading of a message with id `mid` is durably taken: acknowledge it as soon as
        rule 1 allows (now, unless its copy on this connection is still due)."""
        self._taken[mid] = self._taken.get(mid, 0) + 1
        self._flush(mid)

    def _flush(self, mid: int) -> None:
        if not self._connected:
            return
        credit = self._credit.get(mid, 0)
        # an id we hold that this connection must still resend: its PUBACK waits for the copy
        credit -= self._resends_due.get(mid, 0)
        taken = self._taken[mid]
        send = min(taken, max(0, credit))
        if not send:
            return
        for _ in range(send):
            self._send(mid)
        held = self._held.get(mid, 0) - send
        if held > 0:
            self._held[mid] = held
        else:
            self._held.pop(mid, None)
        self.unacked -= send
        left = self._credit[mid] - send
        if left > 0:
            self._credit[mid] = left
        else:
            del self._credit[mid]
        if taken > send:
            self._taken[mid] = taken - send
        else:
            del self._taken[mid]
