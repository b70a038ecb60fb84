"""Real MQTT brokers for tests: mosquitto when installed (CI installs it), otherwise the
embedded amqtt broker, each in its own process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from treadctl.mqtt.embedded import free_port

HOST = "127.0.0.1"
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = False


@dataclass
class Broker:
    kind: str  # "mosquitto" or "embedded"
    port: int
    conf: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = HOST

    @property
    def protocol(self) -> str:
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def start(self) -> Broker:
        if self.kind == "mosquitto":
            assert MOSQUITTO is not None
            cmd = [MOSQUITTO, "-c", str(self.conf)]
        else:
            cmd = [sys.executable, "-m", "treadctl.mqtt.embedded", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening(self.host, self.port, self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


def wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"broker exited with {proc.returncode}: {err}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker not listening on {host}:{port} after {timeout} s")


def mosquitto_broker(
    workdir: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    tls: TlsFiles | None = None,
) -> Broker:
    """A mosquitto configuration (not yet started) on a free port."""
    port = free_port()
    lines = [
        f"listener {port} {HOST}",
        f"allow_anonymous {'false' if password_file else 'true'}",
        "persistence false",
        "log_type error",
        "max_queued_messages 10000",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root mosquitto drops to the "mosquitto" user, which cannot read pytest's 0700
        # tmp dirs (password, ACL and certificate files); stay root in that case.
        lines.append("user root")
    if password_file:
        lines.append(f"password_file {password_file}")
    if acl_file:
        lines.append(f"acl_file {acl_file}")
    if tls:
        lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        if tls.require_certificate:
            lines += ["require_certificate true", "use_identity_as_username false"]
    conf = workdir / f"mosquitto-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    return Broker("mosquitto", port, conf)


def any_broker(workdir: Path) -> Broker:
    """mosquitto if installed (unless TREADCTL_TEST_BROKER=embedded), else the embedded broker;
    not yet started."""
    if MOSQUITTO is not None and os.environ.get("TREADCTL_TEST_BROKER") != "embedded":
        return mosquitto_broker(workdir)
    return Broker("embedded", free_port())
