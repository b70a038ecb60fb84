"""treadctl: drive a treadmill belt in reverse for backward walking."""

__version__ = "0.1.0"
