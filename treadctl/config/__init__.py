"""Configuration: typed settings from one TOML file plus TREADCTL_* environment overrides."""

from treadctl.config.loader import ConfigError, load_settings
from treadctl.config.models import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
