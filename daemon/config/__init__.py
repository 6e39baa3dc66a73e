"""Config: TOML parsed into frozen, typed, validated objects at the edge."""

from daemon.config.fields import ConfigError, ConfigIssue, Range, check_config_type
from daemon.config.loader import AppConfig, ComponentSpec, load_config, parse_config
from daemon.config.types import Duration, Secret

__all__ = [
    "AppConfig",
    "ComponentSpec",
    "ConfigError",
    "ConfigIssue",
    "Duration",
    "Range",
    "Secret",
    "check_config_type",
    "load_config",
    "parse_config",
]
