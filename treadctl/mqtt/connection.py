"""How to reach the broker: protocol, credentials and TLS from `[mqtt]`."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from treadctl.config.models import MqttConfig


class MqttSetupError(Exception):
    """The MQTT settings cannot be used (an unreadable password file or certificate)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None
    password: str | None

    def __repr__(self) -> str:  # never print the password, even in a traceback's locals
        return f"Credentials(username={self.username!r}, password=***)"


def protocol_of(config: MqttConfig) -> aiomqtt.ProtocolVersion:
    return aiomqtt.ProtocolVersion.V5 if config.protocol == "5" else aiomqtt.ProtocolVersion.V311


def _read_secret(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MqttSetupError(f"mqtt.password_file {path}: {exc.strerror or exc}") from exc
    # One line, like mosquitto_passwd input and systemd credentials; a trailing newline is not
    # part of the password.
    return text.rstrip("\r\n")


def credentials(config: MqttConfig) -> Credentials:
    """Read at every connection attempt, so a rotated password file is picked up."""
    if config.password_file is not None:
        return Credentials(config.username, _read_secret(config.password_file))
    if config.password is not None:
        return Credentials(config.username, config.password.get_secret_value())
    return Credentials(config.username, None)


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """Certificates verified against `ca_file` (or the system store), hostname checked unless
    `tls.insecure` is set."""
    tls = config.tls
    if not tls.enabled:
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(tls.ca_file) if tls.ca_file is not None else None
        )
        if tls.cert_file is not None:
            context.load_cert_chain(
                str(tls.cert_file), str(tls.key_file) if tls.key_file is not None else None
            )
    except (OSError, ssl.SSLError) as exc:
        raise MqttSetupError(f"mqtt.tls: {exc}") from exc
    if tls.insecure:
        # paho's meaning of "insecure": the certificate is still verified against the CA, only
        # the hostname is not checked (a lab broker reached by IP address).
        context.check_hostname = False
    return context
