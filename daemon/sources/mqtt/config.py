"""The `mqtt` source's keys, and every rule about them that needs no broker.

Why the session keys default as they do: the source's promise is "a crash means redelivery,
never loss", which at QoS 1 needs a session that outlives the connection. So `clean_start` is
false and `session_expiry_s` keeps the session (its subscriptions and every message that
arrives meanwhile) for a day, and the default `client_id` is stable across restarts, because the
broker finds the session by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from daemon.config.fields import Range
from daemon.config.mqtt import Broker, TlsConfig, derived_client_id, parse_url
from daemon.config.types import Secret
from daemon.sources.messages import PayloadRules, payload_issues

SHARE_PREFIX = "$share/"
_NEVER_EXPIRES = 0xFFFF_FFFF  # MQTT 5: a session expiry of 2**32 - 1 seconds never expires
# What the source holds of raw payloads at once, whatever the broker sends: reading pauses when
# the inbox holds INBOX_BYTES (TCP then pushes back on the broker), and a group taken for
# decoding stops at GROUP_BYTES (one message at least, so one payload may exceed it).
INBOX_BYTES = 16 * 1024 * 1024
GROUP_BYTES = 4 * 1024 * 1024
_DECODED_PER_BYTE = 8  # a decoded JSON payload's Python objects, per payload byte (measured ~5)


@dataclass(frozen=True)
class MqttSourceConfig:
    """The `mqtt` source's keys."""

    topics: Annotated[tuple[str, ...], "topic filters to subscribe to (+ and # wildcards)"]
    url: Annotated[str, "broker: mqtt://host:port, or mqtts://host:port for TLS"] = (
        "mqtt://127.0.0.1:1883"
    )
    qos: Annotated[
        Literal[0, 1],
        "1: a message's PUBACK waits until every reading in it is durably taken; 0: at most once",
    ] = 1
    client_id: Annotated[
        str,
        "MQTT client id, the key of the persistent session; empty: derived from the host name "
        "and this source's label (stable across restarts; set it if sources get reordered)",
    ] = ""
    clean_start: Annotated[
        bool, "false: resume the session, so a restart gets what arrived while it was down"
    ] = False
    session_expiry_s: Annotated[
        float,
        Range(ge=0, le=_NEVER_EXPIRES),
        "how long the broker keeps the session of a disconnected client "
        f"({_NEVER_EXPIRES}: never expires)",
    ] = 86_400.0
    shared_group: Annotated[
        str, "non-empty: subscribe as $share/<group>/<filter>, so daemons split one stream"
    ] = ""
    username: Annotated[Secret | None, "user name; absent: connect anonymously"] = None
    password: Annotated[Secret | None, "password (with username)"] = None
    tls: Annotated[TlsConfig | None, "mqtts:// only: CA and client certificate files"] = None
    receive_maximum: Annotated[
        int,
        Range(ge=1, le=65_535),
        "MQTT 5 Receive Maximum: QoS 1 messages the broker sends ahead of their PUBACKs",
    ] = 65_535
    max_batch: Annotated[
        int,
        Range(ge=1, le=1_000_000),
        "readings per yielded batch, about, at most (a batch is what is waiting, never held "
        "back for more)",
    ] = 8192
    sensor_id_from: Annotated[
        Literal["payload", "topic"], "payload: the `sensor_id` field; topic: from the topic"
    ] = "payload"
    topic_pattern: Annotated[
        str,
        "with sensor_id_from = topic: e.g. 'plant/{sensor_id}/temp' ('+' one level, a final "
        "'#' the rest); empty: the last level",
    ] = ""
    max_payload_bytes: Annotated[
        int, Range(ge=1, le=256 * 1024 * 1024), "larger messages are dead-lettered unread"
    ] = 1_048_576
    keepalive_s: Annotated[
        float, Range(ge=1, le=65_535), "PINGs keep an idle connection known to be alive"
    ] = 30.0
    connect_timeout_s: Annotated[
        float, Range(gt=0, le=300), "TCP connect, TLS handshake and CONNACK, at most"
    ] = 5.0
    reconnect_max_s: Annotated[
        float, Range(gt=0, le=3600), "the longest wait between reconnection attempts"
    ] = 30.0

    def check(self) -> list[tuple[str, str]]:
        broker = parse_url(self.url)
        issues: list[tuple[str, str]] = []
        if isinstance(broker, str):
            issues.append(("url", broker))
        elif self.tls is not None and not broker.tls:
            issues.append(("tls", "is used only with an mqtts:// url"))
        if not self.topics:
            issues.append(("topics", "must name at least one topic filter"))
        issues += [("topics", f"{f!r} {why}") for f in self.topics if (why := _bad(f))]
        if any(c in self.shared_group for c in "/+#"):
            issues.append(("shared_group", "must not hold '/', '+' or '#'"))
        if self.password is not None and self.username is None:
            issues.append(("password", "needs a username"))
        if len(self.client_id.encode("utf-8")) > 65_535:
            issues.append(("client_id", "must be at most 65535 bytes"))
        return issues + payload_issues(self.sensor_id_from, self.topic_pattern)

    def worst_case_bytes(self) -> int:
        """For the config's memory budget: the inbox, the last payload over its bound, and
        the largest group being decoded (the batches after it are the pipeline's, counted by
        `max_batch`)."""
        group = GROUP_BYTES + self.max_payload_bytes
        return INBOX_BYTES + self.max_payload_bytes + group * (1 + _DECODED_PER_BYTE)

    def broker(self) -> Broker:
        broker = parse_url(self.url)
        assert isinstance(broker, Broker), broker  # check() refused anything else
        return broker

    def subscriptions(self) -> list[str]:
        """The filters as subscribed: each under `$share/<group>/` when the stream is shared."""
        if not self.shared_group:
            return list(self.topics)
        return [f"{SHARE_PREFIX}{self.shared_group}/{t}" for t in self.topics]

    def client_id_for(self, label: str) -> str:
        """The configured id, or one derived from this host and the source's label: the same
        on every restart (the session survives) and distinct between sources and hosts."""
        if self.client_id:
            return self.client_id
        return derived_client_id(label)

    def session_expiry(self) -> int:
        return min(_NEVER_EXPIRES, round(self.session_expiry_s))

    def rules(self) -> PayloadRules:
        return PayloadRules(
            max_payload_bytes=self.max_payload_bytes,
            sensor_id_from=self.sensor_id_from,
            topic_pattern=self.topic_pattern,
        )


def _bad(topic_filter: str) -> str | None:
    """Why `topic_filter` is not a filter one may subscribe to (MQTT 5, 4.7), or None."""
    levels = topic_filter.split("/")
    problems = {
        "must not be empty": not topic_filter,
        "is a shared subscription: give the plain filter and set shared_group": (
            topic_filter.startswith(SHARE_PREFIX)
        ),
        "must not hold a NUL character": "\0" in topic_filter,
        "is too long for an MQTT topic filter": (
            len(topic_filter.encode("utf-8", "surrogatepass")) > 65_000
        ),
        "'#' must be a whole level, and the last": any(
            "#" in level and (level != "#" or i != len(levels) - 1)
            for i, level in enumerate(levels)
        ),
        "'+' must be a whole level": any("+" in level and level != "+" for level in levels),
    }
    return next((why for why, bad in problems.items() if bad), None)
