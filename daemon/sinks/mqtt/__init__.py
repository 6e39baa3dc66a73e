"""The `mqtt` publish sink: its keys (`config.py`), its event-loop connection (`connection.py`)
and the sink (`sink.py`)."""

from daemon.sinks.mqtt.config import MqttConfig
from daemon.sinks.mqtt.sink import MqttSink

__all__ = ["MqttConfig", "MqttSink"]
