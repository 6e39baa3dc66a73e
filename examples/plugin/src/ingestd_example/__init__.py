"""An example ingestd plugin: one stage, `drop_sensors`.

ingestd finds this package through its `ingestd.plugins` entry point (see pyproject.toml) and
imports it before reading a config; importing `drop_sensors` registers the stage by name.
"""

from ingestd_example.drop_sensors import DropSensors, DropSensorsConfig

__all__ = ["DropSensors", "DropSensorsConfig"]
