"""The `mqtt` source: MQTT 5 subscriptions, PUBACKs withheld until the readings are taken."""

from daemon.sources.mqtt.config import MqttSourceConfig, TlsConfig
from daemon.sources.mqtt.source import MqttSource

__all__ = ["MqttSource", "MqttSourceConfig", "TlsConfig"]
