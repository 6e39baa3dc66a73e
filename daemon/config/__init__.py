"""Config: TOML parsed into frozen, typed, validated objects at the edge."""

from daemon.config.fields import ConfigError, ConfigIssue, Range
from daemon.config.loader import AppConfig, ComponentSpec, load_config, parse_config

__all__ = [
    "AppConfig",
    "ComponentSpec",
    "ConfigError",
    "ConfigIssue",
    "Range",
    "load_config",
    "parse_config",
]
