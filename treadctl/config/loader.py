"""Load Settings from one TOML file plus the environment, with errors that name file and key."""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)

from treadctl.config.models import Settings

ENV_PREFIX = "TREADCTL_"
REDACTED = "**********"
_file_data: ContextVar[dict[str, Any] | None] = ContextVar(
    "treadctl_config_file_data", default=None
)


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the file (or variable) and key."""


class _Settings(Settings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files by design
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, then TREADCTL_* variables, then the TOML file.
        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, _file_data.get() or {}),
        )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def load_settings(path: Path | None = None) -> Settings:
    """Settings from `path` (optional: embedded defaults without it) and TREADCTL_* variables."""
    data = read_toml(path) if path is not None else {}
    token = _file_data.set(data)
    try:
        return _Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from exc
    finally:
        _file_data.reset(token)


def _describe(exc: ValidationError, path: Path | None) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"] if part != "__root__")
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        if env in {k.upper() for k in os.environ}:
            where = f"environment {env}"
        elif path is not None:
            where = str(path)
        else:
            where = "defaults"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        value = err.get("input")
        shown = (
            ""
            if err["type"] in {"extra_forbidden", "missing"} or isinstance(value, dict)
            else f" (got {value!r})"
        )
        lines.append(f"{where}: {key or '(top level)'}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets replaced."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return walk(settings.model_dump(mode="python"))  # type: ignore[no-any-return]
