"""The `nats` source's keys, and every rule about them that needs no server.

Why `subjects` and `filter_subject` are two keys: on nats-server 2.9 a consumer filters on one
subject at most, while a stream may capture several. `subjects` is what the stream captures
(used to create it, and checked against an existing one so a mismatch fails at start instead
of silently delivering nothing); `filter_subject` narrows the consumer to part of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlsplit

from daemon.config.fields import Range
from daemon.config.types import Secret
from daemon.sources.messages import PayloadRules, payload_issues
from daemon.sources.nats.subjects import covers, name_issue, subject_issue

_SCHEMES = ("nats", "tls", "ws", "wss")


@dataclass(frozen=True)
class NatsConfig:
    """The `nats` source's keys."""

    stream: Annotated[str, "the JetStream stream to read"]
    url: Annotated[str, "server URL (nats:// or tls://); several comma-separated: a cluster"] = (
        "nats://127.0.0.1:4222"
    )
    subjects: Annotated[
        tuple[str, ...],
        "subjects the stream captures: used to create it, and an existing one must cover them",
    ] = ()
    filter_subject: Annotated[str, "the consumer reads only this subject of the stream"] = ""
    durable: Annotated[str, "the durable pull consumer; daemons sharing it share the work"] = (
        "ingestd"
    )
    create: Annotated[
        bool,
        "create the stream and the consumer if missing, and keep the consumer's ack settings in "
        "line with these keys; false: bind to existing ones and refuse a consumer that differs",
    ] = True
    batch: Annotated[int, Range(ge=1, le=10_000), "messages asked for per fetch"] = 512
    batch_max_readings: Annotated[
        int,
        Range(ge=1, le=1_000_000),
        "a yielded batch grows by further fetches while more messages are waiting, up to this",
    ] = 4096
    max_ack_pending: Annotated[
        int,
        Range(ge=1, le=10_000_000),
        "unacknowledged messages the consumer hands out at most, to all daemons sharing it "
        "(the backpressure)",
    ] = 20_000
    ack_wait_s: Annotated[
        float, Range(gt=0, le=86_400), "an unacknowledged message is redelivered after this"
    ] = 30.0
    fetch_linger_s: Annotated[
        float,
        Range(ge=0.0005, le=1.0),
        "how long a fetch that found nothing waiting gives messages to arrive before going "
        "idle; keep it above the round trip to the server",
    ] = 0.005
    sensor_id_from: Annotated[
        Literal["payload", "topic"], "payload: the `sensor_id` field; topic: from the subject"
    ] = "payload"
    topic_pattern: Annotated[
        str,
        "with sensor_id_from = topic: e.g. 'plant.{sensor_id}.temp' ('*' one token, a final "
        "'>' the rest); empty: the last token",
    ] = ""
    max_payload_bytes: Annotated[
        int, Range(ge=1, le=64 * 1024 * 1024), "larger messages are dead-lettered unread"
    ] = 1_048_576
    user: Annotated[str, "user name (with password)"] = ""
    password: Annotated[Secret | None, "password of `user`"] = None
    token: Annotated[Secret | None, "authentication token (instead of user/password)"] = None
    connect_timeout_s: Annotated[float, Range(gt=0, le=300), "one connection attempt, at most"] = (
        5.0
    )
    reconnect_wait_s: Annotated[
        float, Range(gt=0, le=300), "between reconnection attempts (it never gives up)"
    ] = 2.0

    def check(self) -> list[tuple[str, str]]:
        issues = [("url", why) for why in _url_issues(self.url)]
        for key, name in (("stream", self.stream), ("durable", self.durable)):
            if why := name_issue(name):
                issues.append((key, why))
        for subject in self.subjects:
            if why := subject_issue(subject):
                issues.append(("subjects", why))
        if self.create and not self.subjects:
            issues.append(
                ("subjects", "must not be empty with create = true (the stream's subjects)")
            )
        if self.filter_subject:
            if why := subject_issue(self.filter_subject):
                issues.append(("filter_subject", why))
            elif self.subjects and not any(covers(s, self.filter_subject) for s in self.subjects):
                issues.append(("filter_subject", f"{self.filter_subject!r} is not within subjects"))
        if self.max_ack_pending < self.batch:
            issues.append(("max_ack_pending", f"must be >= batch ({self.batch})"))
        if self.password is not None and not self.user:
            issues.append(("password", "needs user"))
        if self.token is not None and (self.user or self.password is not None):
            issues.append(("token", "is instead of user/password, not with them"))
        issues += payload_issues(self.sensor_id_from, nats_pattern(self.topic_pattern))
        return issues

    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]

    def rules(self) -> PayloadRules:
        return PayloadRules(
            max_payload_bytes=self.max_payload_bytes,
            sensor_id_from=self.sensor_id_from,
            topic_pattern=nats_pattern(self.topic_pattern),
            separator=".",
            origin_key="subject",
        )


def nats_pattern(pattern: str) -> str:
    """`topic_pattern` in the shared pattern language: NATS's `*` and `>` tokens are its `+`
    and `#`, so a pattern reads like the subjects it matches."""
    if not pattern:
        return ""
    mapping = {"*": "+", ">": "#"}
    return ".".join(mapping.get(token, token) for token in pattern.split("."))


def _url_issues(url: str) -> list[str]:
    servers = [u.strip() for u in url.split(",")]
    if not any(servers):
        return ["must not be empty"]
    issues = []
    for server in servers:
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError as exc:
            issues.append(f"{server!r}: {exc}")
            continue
        if parts.scheme not in _SCHEMES:
            issues.append(f"{server!r}: the scheme must be one of {', '.join(_SCHEMES)}")
        elif not parts.hostname:
            issues.append(f"{server!r} names no host")
        elif port == 0:
            issues.append(f"{server!r}: port 0")
    return issues
