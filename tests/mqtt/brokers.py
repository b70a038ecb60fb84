"""Real MQTT brokers for tests: mosquitto when installed (CI installs it), otherwise the
embedded amqtt broker, each in its own process on a free loopback port.

`TREADCTL_TEST_BROKER=embedded` makes `any_broker` the embedded broker even where mosquitto is
installed: CI runs the broker tests a second time so, as a machine without mosquitto would
(docs/testing.md). Tests that need mosquitto itself (MQTT 5, passwords, TLS, ACLs) ask for it with
`mosquitto_broker` and skip only where it is not installed.

`start()` and `kill()` block until the broker listens or has exited: for sync fixtures, which run
outside the event loop. A test whose loop runs a controller or a simulator uses `astart()` and
`akill()`, which wait without blocking it (tests/loopwatch.py fails a test whose loop is blocked).
"""

from __future__ import annotations

import asyncio
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
# Debian installs the broker in /usr/sbin, which is not on an ordinary user's PATH.
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
NEEDS_MOSQUITTO = "needs mosquitto (apt install mosquitto; CI installs it)"
NEEDS_CLIENTS = "needs mosquitto-clients (apt install mosquitto-clients; CI installs it)"
WAIT_S = 10.0  # for a broker to listen, or to exit once killed


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
    workdir: Path  # its log (stderr), and mosquitto's configuration
    conf: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = HOST

    @property
    def protocol(self) -> str:
        return "5" if self.kind == "mosquitto" else "3.1.1"

    def _launch(self) -> subprocess.Popen[bytes]:
        assert self.proc is None, "the broker is already running"
        if self.kind == "mosquitto":
            assert MOSQUITTO is not None
            cmd = [MOSQUITTO, "-c", str(self.conf)]
        else:
            cmd = [sys.executable, "-m", "treadctl.mqtt.embedded", "--port", str(self.port)]
        # stderr to a file, not a pipe: a pipe nobody reads fills up over a session and the
        # broker then hangs in its next log write
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        return self.proc

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.kind}-{self.port}.log"

    def start(self) -> Broker:
        """Start and wait until it listens, blocking: outside a running event loop only."""
        proc = self._launch()
        deadline = time.monotonic() + WAIT_S
        while not self._listening(proc):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"broker not listening on {self.host}:{self.port} after {WAIT_S} s"
                )
            time.sleep(0.05)
        return self

    async def astart(self) -> Broker:
        """Start and wait until it listens, without blocking the event loop."""
        proc = self._launch()
        try:
            async with asyncio.timeout(WAIT_S):
                while not await self._alistening(proc):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise RuntimeError(
                f"broker not listening on {self.host}:{self.port} after {WAIT_S} s"
            ) from None
        return self

    def _listening(self, proc: subprocess.Popen[bytes]) -> bool:
        """Whether the broker accepts a connection (at most 0.2 s); raises if it has exited."""
        self._check_running(proc)
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    async def _alistening(self, proc: subprocess.Popen[bytes]) -> bool:
        self._check_running(proc)
        try:
            async with asyncio.timeout(0.2):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        await writer.wait_closed()
        return True

    def _check_running(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            err = self.log.read_text(errors="replace")
            raise RuntimeError(f"broker exited with {proc.returncode}: {err}")

    def kill(self) -> None:
        """SIGKILL and wait for the exit, blocking: outside a running event loop only."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT_S)
        self.proc = None

    async def akill(self) -> None:
        """SIGKILL and wait for the exit, without blocking the event loop."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            async with asyncio.timeout(WAIT_S):
                while proc.poll() is None:
                    await asyncio.sleep(0.01)
        self.proc = None


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
    return Broker("mosquitto", port, workdir, conf)


def any_broker(workdir: Path) -> Broker:
    """mosquitto if installed (unless TREADCTL_TEST_BROKER=embedded), else the embedded broker;
    not yet started."""
    if MOSQUITTO is not None and os.environ.get("TREADCTL_TEST_BROKER") != "embedded":
        return mosquitto_broker(workdir)
    return Broker("embedded", free_port(), workdir)
