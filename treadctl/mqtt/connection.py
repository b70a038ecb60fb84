"""How to reach the broker: protocol, credentials and TLS from `[mqtt]`."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from treadctl.config.models import MqttConfig

PAHO_CONNECT_TIMEOUT_S = 5.0


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


def new_client(
    config: MqttConfig,
    identifier: str,
    *,
    creds: Credentials,
    tls: ssl.SSLContext | None,
    timeout_s: float = 10.0,
    **options: Any,
) -> aiomqtt.Client:
    """The one place an aiomqtt client is built from `[mqtt]`: daemon, CLI and demo alike.

    `options` are aiomqtt's own (will, queue_type, ...). Credentials and TLS are passed in, read
    beforehand, because reading them may block on a file (the daemon reads them in a thread).
    """
    client = aiomqtt.Client(
        config.host,
        config.port,
        identifier=identifier,
        protocol=protocol_of(config),
        username=creds.username,
        password=creds.password,
        tls_context=tls,
        keepalive=config.keepalive_s,
        timeout=timeout_s,
        # Small packets (an e-stop's answer, the acknowledgements) leave at once, not after
        # Nagle's wait for the broker's ACK.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        **options,
    )
    # paho's blocking socket connect runs in a worker thread that no asyncio timeout cancels (and
    # asyncio.run waits for it on exit): bound it by the timeout too (paho's own default is 5 s).
    client._client.connect_timeout = min(timeout_s, PAHO_CONNECT_TIMEOUT_S)  # noqa: SLF001 - aiomqtt has no public setting
    return client
