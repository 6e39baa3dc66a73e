"""The `nats` sink's keys, and every rule about them that needs no server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from daemon.config.fields import Range
from daemon.config.types import Secret
from daemon.sinks.publish import PLACEHOLDERS, sample, template_problem

_SCHEMES = ("nats", "tls")
_FORBIDDEN_IN_NAME = frozenset(" \t\r\n.*>/\\")


@dataclass(frozen=True)
class NatsSinkConfig:
    """The `nats` sink's keys."""

    url: Annotated[str, "server URL (nats:// or tls://); several comma-separated: a cluster"] = (
        "nats://127.0.0.1:4222"
    )
    subject: Annotated[
        str, "subject template; {sensor_id} and {kind} are filled in (escaped to one token each)"
    ] = "ingestd.{kind}.{sensor_id}"
    jetstream: Annotated[
        bool,
        "true: JetStream publish, a batch is written once every PubAck arrived; false: core"
        " NATS publish, written once a flush returned (at most once)",
    ] = True
    stream: Annotated[
        str, "the stream expected to capture the subjects (checked per message); empty: any"
    ] = ""
    create: Annotated[
        bool, "create `stream` if missing, capturing the subject template's subjects"
    ] = False
    user: Annotated[str, "user name (with password)"] = ""
    password: Annotated[Secret | None, "password of `user`"] = None
    token: Annotated[Secret | None, "authentication token (instead of user/password)"] = None
    connect_timeout_s: Annotated[float, Range(gt=0), "connecting to the server, at most"] = 5.0
    ack_timeout_s: Annotated[
        float, Range(gt=0), "no PubAck at all for this long fails the batch (core: the flush's)"
    ] = 10.0
    max_inflight: Annotated[
        int, Range(ge=1, le=100_000), "jetstream: messages published and not yet acknowledged"
    ] = 1000

    def check(self) -> list[tuple[str, str]]:
        issues = [("url", why) for why in _url_issues(self.url)]
        if problem := template_problem(self.subject) or subject_problem(self.subject):
            issues.append(("subject", problem))
        if self.stream and (problem := name_problem(self.stream)):
            issues.append(("stream", problem))
        if self.stream and not self.jetstream:
            issues.append(("stream", "is used only with jetstream = true"))
        if self.create and not self.stream:
            issues.append(("create", "needs a stream to create"))
        if self.password is not None and not self.user:
            issues.append(("password", "needs user"))
        if self.token is not None and (self.user or self.password is not None):
            issues.append(("token", "is instead of user/password, not with them"))
        return issues

    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]

    def capture(self) -> str:
        """The subjects a created stream captures: each token of the template that holds a
        placeholder (one escaped token, whatever the value) becomes `*`."""
        marks = dict.fromkeys(PLACEHOLDERS, "\0")
        return ".".join(
            "*" if "\0" in token else token for token in self.subject.format(**marks).split(".")
        )


def subject_problem(template: str) -> str | None:
    """What NATS forbids in the template's own text (the values are escaped)."""
    text = sample(template)
    if any(c.isspace() for c in text):
        return "must not hold whitespace"
    if "" in text.split("."):
        return "has an empty token (a leading, trailing or double '.')"
    if "*" in text or ">" in text:
        return "must not hold a wildcard (* or >): a message is published to one subject"
    return None


def name_problem(name: str) -> str | None:
    bad = sorted(set(name) & _FORBIDDEN_IN_NAME)
    if bad:
        return f"{name!r} must not contain {' '.join(repr(c) for c in bad)}"
    return None


def _url_issues(url: str) -> list[str]:
    servers = [u.strip() for u in url.split(",")]
    if not any(servers):
        return ["must name a server, e.g. nats://127.0.0.1:4222"]
    issues = []
    for server in servers:
        try:
            parts = urlsplit(server)
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError as exc:
            issues.append(f"{server!r} is not a URL: {exc}")
            continue
        if parts.scheme not in _SCHEMES:
            issues.append(f"{server!r}: the scheme must be nats:// or tls://")
        elif not parts.hostname:
            issues.append(f"{server!r} names no host")
        elif parts.username is not None or parts.password is not None:
            issues.append(f"{server!r}: credentials go in user/password or token, not the url")
    return issues
