"""The `mqtt` sink's keys, and the broker address they name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from daemon.config.fields import Range
from daemon.config.mqtt import Broker, TlsConfig, derived_client_id, parse_url
from daemon.config.types import Secret
from daemon.sinks.publish import sample, template_problem


@dataclass(frozen=True)
class MqttConfig:
    """The `mqtt` sink's keys."""

    url: Annotated[str, "broker: mqtt://host:port, or mqtts://host:port for TLS"] = (
        "mqtt://127.0.0.1:1883"
    )
    topic: Annotated[
        str, "topic template; {sensor_id} and {kind} are filled in (escaped to one level each)"
    ] = "ingestd/{kind}/{sensor_id}"
    qos: Annotated[
        Literal[0, 1], "1: a batch is written once the broker PUBACKed every message; 0: sent"
    ] = 1
    client_id: Annotated[str, "MQTT client id; empty: derived from host, sink and url (stable)"] = (
        ""
    )
    username: Annotated[Secret | None, "user name; absent: connect anonymously"] = None
    password: Annotated[Secret | None, "password (with username)"] = None
    retain: Annotated[
        bool, "publish with the retain flag (the broker keeps the last per topic)"
    ] = False
    connect_timeout_s: Annotated[
        float, Range(gt=0), "TCP connect, TLS handshake and CONNACK, at most"
    ] = 5.0
    max_inflight: Annotated[
        int, Range(ge=1, le=65_535), "messages sent and not yet acknowledged, at most"
    ] = 1000
    tls: Annotated[TlsConfig | None, "mqtts:// only: CA and client certificate files"] = None

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        broker = parse_url(self.url)
        if isinstance(broker, str):
            issues.append(("url", broker))
        if problem := template_problem(self.topic) or topic_problem(self.topic):
            issues.append(("topic", problem))
        if self.password is not None and self.username is None:
            issues.append(("password", "needs a username"))
        if len(self.client_id.encode("utf-8")) > 65_535:
            issues.append(("client_id", "must be at most 65535 bytes"))
        if self.tls is not None and not (isinstance(broker, Broker) and broker.tls):
            issues.append(("tls", "is used only with an mqtts:// url"))
        return issues

    def broker(self) -> Broker:
        broker = parse_url(self.url)
        assert isinstance(broker, Broker), broker  # check() refused anything else
        return broker

    def client_id_for(self, label: str) -> str:
        """The configured id, or one stable across restarts of this sink on this host (so a
        broker's logs and ACLs see the same client) and distinct between sinks and hosts."""
        if self.client_id:
            return self.client_id
        return derived_client_id(label, self.url)


def topic_problem(template: str) -> str | None:
    """What MQTT forbids in the template's own text (the values are escaped)."""
    text = sample(template)
    if "+" in text or "#" in text:
        return "must not hold a wildcard (+ or #): a message is published to one topic"
    if "\0" in text:
        return "must not hold a NUL character"
    if len(text.encode("utf-8", "surrogatepass")) > 60_000:
        return "is too long for an MQTT topic"
    return None
