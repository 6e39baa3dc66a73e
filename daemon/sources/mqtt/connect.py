"""The paho client of one source, configured: MQTT 5, manual acks, a session that outlives it.

Everything here is set before the first connection and holds for every reconnection: the
client id (the session's key), `clean_start` and the Session Expiry Interval, the Receive
Maximum (how many QoS 1 messages the broker may send ahead of their PUBACKs), the credentials
and the TLS context. `connect_async` only records where to connect; `Bridge.connect` connects.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.sources.mqtt.config import MqttSourceConfig
from daemon.sources.mqtt.loop import BufferedClient


def new_client(config: MqttSourceConfig, client_id: str) -> BufferedClient:
    broker = config.broker()
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,  # a PUBACK only when the source says the message is taken
    )
    client.connect_timeout = config.connect_timeout_s
    if config.username is not None:
        password = config.password.reveal() if config.password is not None else None
        client.username_pw_set(config.username.reveal(), password)
    if broker.tls:
        client.tls_set_context(tls_context(config))
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = config.session_expiry()
    props.ReceiveMaximum = config.receive_maximum
    client.connect_async(
        broker.host,
        broker.port,
        keepalive=max(1, round(config.keepalive_s)),
        clean_start=config.clean_start,
        properties=props,
    )
    return client


def tls_context(config: MqttSourceConfig) -> ssl.SSLContext:
    """Verifies the broker (by `tls.ca_file`, else the system's CAs, and its host name) and
    presents the client certificate if one is configured."""
    tls = config.tls
    context = ssl.create_default_context(cafile=(tls.ca_file or None) if tls else None)
    if tls is not None and tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context
