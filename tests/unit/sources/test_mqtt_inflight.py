"""When a PUBACK may go out (`daemon.sources.mqtt.inflight`): never before the broker sent
the message on the current connection, each once per message, in the order they arrived."""

from __future__ import annotations

from daemon.sources.mqtt.inflight import InFlight


def connected() -> tuple[InFlight, list[int]]:
    sent: list[int] = []
    ids = InFlight(sent.append)
    ids.connected()
    return ids, sent


def test_a_message_is_acknowledged_once_taken() -> None:
    ids, sent = connected()
    assert ids.arrived(7, dup=False) is True
    assert sent == [] and ids.unacked == 1
    ids.taken(7)
    assert sent == [7] and ids.unacked == 0


def test_taken_while_disconnected_waits_for_the_resend_on_the_next_connection() -> None:
    ids, sent = connected()
    ids.arrived(1, dup=False)
    ids.arrived(2, dup=False)
    ids.disconnected()
    ids.taken(1)
    assert sent == []  # no connection
    ids.connected()  # session present: the broker sends 1 and 2 again
    assert sent == []  # 1's copy has not come yet: its id might still be freed and reused
    assert ids.arrived(1, dup=True) is False  # the resend of one we have: not passed on
    assert sent == [1]  # answered on this connection
    assert ids.arrived(2, dup=True) is False
    assert sent == [1] and ids.unacked == 1  # 2 is not taken yet
    ids.taken(2)
    assert sent == [1, 2] and ids.unacked == 0


def test_taken_after_a_reconnect_before_its_resend_waits_for_it() -> None:
    ids, sent = connected()
    ids.arrived(5, dup=False)
    ids.disconnected()
    ids.connected()
    ids.taken(5)
    assert sent == []
    ids.arrived(5, dup=True)
    assert sent == [5]


def test_a_lost_puback_means_the_resend_is_a_message_again() -> None:
    ids, sent = connected()
    ids.arrived(3, dup=False)
    ids.taken(3)  # sent, but the connection dropped before the broker read it
    ids.disconnected()
    ids.connected()
    assert ids.arrived(3, dup=True) is True  # we hold nothing under 3: pass it on again
    ids.taken(3)
    assert sent == [3, 3]


def test_one_id_twice_in_flight_is_two_messages_acknowledged_in_order() -> None:
    ids, sent = connected()
    assert ids.arrived(9, dup=False) is True
    assert ids.arrived(9, dup=False) is True  # Mosquitto 2.0.11 past 65,535 outstanding
    assert ids.unacked == 2
    ids.taken(9)
    assert sent == [9] and ids.unacked == 1
    ids.taken(9)
    assert sent == [9, 9] and ids.unacked == 0


def test_never_more_pubacks_for_an_id_than_copies_on_this_connection() -> None:
    ids, sent = connected()
    ids.arrived(4, dup=False)
    ids.arrived(4, dup=False)
    ids.disconnected()
    ids.connected()  # both come again
    ids.arrived(4, dup=True)
    ids.taken(4)
    ids.taken(4)
    assert sent == []  # one copy is still due: acknowledging now could free the id early
    ids.arrived(4, dup=True)
    assert sent == [4, 4] and ids.unacked == 0


def test_a_new_session_forgets_every_id() -> None:
    ids, sent = connected()
    ids.arrived(1, dup=False)
    ids.disconnected()
    ids.new_session()
    ids.connected()
    assert ids.unacked == 0
    assert ids.arrived(1, dup=False) is True  # a new message under an old id
    ids.taken(1)
    assert sent == [1] and ids.unacked == 0
