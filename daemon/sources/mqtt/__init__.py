"""The `mqtt` source: MQTT 5 subscriptions, PUBACKs withheld until the readings are taken."""

from daemon.config.mqtt import TlsConfig
from daemon.sources.mqtt.config import MqttSourceConfig
from daemon.sources.mqtt.source import MqttSource

__all__ = ["MqttSource", "MqttSourceConfig", "TlsConfig"]
