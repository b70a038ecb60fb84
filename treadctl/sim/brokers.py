"""MQTT brokers in their own processes on free loopback ports, for tests and benches: mosquitto
(when installed) with the options a test needs, or the embedded broker (sim/embedded_broker.py).

`start()` and `kill()` block until the broker listens or has exited: for code outside an event
loop (sync fixtures, benches; also `with broker:`). Code whose loop runs a controller or a
simulator uses `astart()` and `akill()`, which wait without blocking it.
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
from types import TracebackType
from typing import Literal, Self

HOST = "127.0.0.1"
WAIT_S = 10.0  # for a broker to listen, or to exit once killed
NEEDS_MOSQUITTO = "needs mosquitto (apt install mosquitto; CI installs it)"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    # Debian installs the broker in /usr/sbin, which is not on an ordinary user's PATH.
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").exists():
        found = "/usr/sbin/mosquitto"
    return found


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    require_certificate: bool = False


@dataclass
class Broker:
    kind: Literal["mosquitto", "embedded"]
    port: int
    workdir: Path  # its log (stderr), and mosquitto's configuration
    conf: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = HOST

    @property
    def protocol(self) -> str:
        return "5" if self.kind == "mosquitto" else "3.1.1"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.kind}-{self.port}.log"

    def _command(self) -> list[str]:
        if self.kind == "embedded":
            return [sys.executable, "-m", "treadctl.sim.embedded_broker", "--port", str(self.port)]
        mosquitto = find_mosquitto()
        if mosquitto is None:
            raise RuntimeError(NEEDS_MOSQUITTO)
        return [mosquitto, "-c", str(self.conf)]

    def _launch(self) -> subprocess.Popen[bytes]:
        if self.proc is not None:
            raise RuntimeError("the broker is already running")
        cmd = self._command()
        # stderr to a file, not a pipe: a pipe nobody reads fills up over a session and the
        # broker then hangs in its next log write
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)  # noqa: S603
        return self.proc

    def start(self) -> Self:
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

    async def astart(self) -> Self:
        """Start and wait until it listens, without blocking the event loop."""
        proc = self._launch()
        try:
            async with asyncio.timeout(WAIT_S):
                # no event says a port listens, or (below) that a process exited: poll
                while not await self._alistening(proc):  # noqa: ASYNC110
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
                while proc.poll() is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def mosquitto_broker(
    workdir: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    tls: TlsFiles | None = None,
    nodelay: bool = False,
) -> Broker:
    """A mosquitto configuration (not yet started) on a free port.

    `nodelay`: `set_tcp_nodelay true`, as docs/mqtt.md recommends. mosquitto's default leaves
    Nagle's algorithm on: a command can then wait behind the broker's own unacknowledged small
    packets (PUBACKs) for the client's delayed ACK, up to ~40 ms (docs/performance.md).
    """
    port = free_port()
    lines = [
        f"listener {port} {HOST}",
        f"allow_anonymous {'false' if password_file else 'true'}",
        "persistence false",
        "log_type error",
        "max_queued_messages 10000",
    ]
    if nodelay:
        lines.append("set_tcp_nodelay true")
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


def embedded_broker(workdir: Path) -> Broker:
    """The embedded broker (amqtt, MQTT 3.1.1) in its own process, not yet started."""
    return Broker("embedded", free_port(), workdir)
