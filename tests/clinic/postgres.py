"""A throwaway PostgreSQL server for the tests: Debian's server binaries, `initdb` into a
temporary directory, `postgres` on a free loopback port, stopped and removed at the end
(docs/testing.md).

Fast rather than durable: no sync in initdb, fsync, synchronous commit and full-page writes off;
the directory is deleted anyway. PostgreSQL refuses to run as root, so as root (CI) initdb and the
server run as the `postgres` system user that Debian's package creates. `start()` and `stop()`
block: for sync fixtures, outside a running event loop.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

from treadctl.sim.brokers import HOST, free_port

NEEDS_POSTGRES = "needs PostgreSQL's server (apt install postgresql; CI installs it)"
DEBIAN_LIB = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"  # the role initdb creates; the OS user as root
FIRST_DATABASE = "treadctl"
START_S = 30.0  # initdb, then until the server accepts a connection
STOP_S = 10.0  # for the server to exit after SIGQUIT, then after SIGKILL
BIND_ATTEMPTS = 3  # the free port may be taken between choosing it and binding it


class PostgresError(RuntimeError):
    """The test server could not be found, set up or started."""


class PostgresMissingError(PostgresError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir(root: Path = DEBIAN_LIB) -> Path:
    """Debian's newest server (`/usr/lib/postgresql/<version>/bin`), else `initdb` on PATH."""
    versions = []
    for initdb in root.glob("*/bin/initdb"):
        bindir = initdb.parent
        if bindir.parent.name.isdigit() and (bindir / "postgres").exists():
            versions.append((int(bindir.parent.name), bindir))
    if versions:
        return max(versions)[1]
    on_path = shutil.which("initdb")
    if on_path is not None and (bindir := Path(on_path).resolve().parent / "postgres").exists():
        return bindir.parent
    raise PostgresMissingError(f"{NEEDS_POSTGRES}: no {root}/*/bin/initdb, no initdb on PATH")


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to the `postgres` user; none for anyone else."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresMissingError(
            f"{NEEDS_POSTGRES}: running as root, and there is no '{SUPERUSER}' user to run the "
            "server as (Debian's package creates it)"
        ) from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def libpq_url(port: int, dbname: str, host: str = HOST) -> str:
    return f"postgresql://{SUPERUSER}@{host}:{port}/{dbname}"


@dataclass
class PostgresServer:
    """`with PostgresServer() as pg:` a server with one database; `pg.url` for SQLAlchemy,
    `pg.database()` for a fresh database of one's own."""

    bindir: Path = field(default_factory=find_bindir)
    port: int = 0
    workdir: Path | None = None  # data directory, socket and log; removed by stop()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    host: str = HOST
    started_in_s: float = 0.0

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database created at start."""
        return self.url_for(FIRST_DATABASE)

    def url_for(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def libpq_url(self, dbname: str = FIRST_DATABASE) -> str:
        """The same as `url_for`, for psycopg itself."""
        return libpq_url(self.port, dbname, self.host)

    @property
    def log(self) -> Path:
        if self.workdir is None:
            raise PostgresError("the server has not been started")
        return self.workdir / "postgres.log"

    def start(self) -> Self:
        if self.proc is not None:
            raise PostgresError("the server is already running")
        t0 = time.monotonic()
        run_as = _run_as()
        # Not pytest's tmp_path: its 0700 parents keep the postgres user out, and the socket
        # path must stay short (about 100 bytes).
        self.workdir = Path(tempfile.mkdtemp(prefix="treadctl-pg-"))
        try:
            if run_as:
                os.chown(self.workdir, run_as["user"], run_as["group"])
            self._initdb(run_as, deadline=t0 + START_S)
            for attempt in range(1, BIND_ATTEMPTS + 1):
                if self._launch(run_as, deadline=t0 + START_S, last=attempt == BIND_ATTEMPTS):
                    break
            with psycopg.connect(self.libpq_url("postgres"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(FIRST_DATABASE)))
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - t0
        return self

    def _initdb(self, run_as: dict[str, Any], deadline: float) -> None:
        assert self.workdir is not None
        cmd = [
            str(self.bindir / "initdb"),
            *("-D", str(self.workdir / "data"), "-U", SUPERUSER, "-A", "trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"),
        ]
        # TZ set: initdb takes it instead of probing the system's zone files
        env = {**os.environ, "TZ": "UTC"}
        done = subprocess.run(
            cmd,
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1.0),
            check=False,
            **run_as,
        )
        if done.returncode != 0:
            raise PostgresError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")

    def _launch(self, run_as: dict[str, Any], deadline: float, *, last: bool) -> bool:
        """Start `postgres` on a free port and wait until it accepts a connection; False if the
        port was taken meanwhile (not on the `last` attempt: that raises)."""
        assert self.workdir is not None
        self.port = free_port(self.host)
        cmd = [
            str(self.bindir / "postgres"),
            *("-D", str(self.workdir / "data"), "-p", str(self.port), "-k", str(self.workdir)),
            *("-c", f"listen_addresses={self.host}", "-c", "fsync=off"),
            *("-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ]
        # stderr to a file: a pipe nobody reads would fill up and hang the server
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in the terminal reaches pytest, which stops it
                **run_as,
            )
        while not self._accepts(self.proc):
            if self.proc.poll() is not None:
                text = self.log.read_text(errors="replace")
                if not last and re.search(r"could not bind|Address already in use", text):
                    self.proc = None
                    return False
                raise PostgresError(f"postgres exited with {self.proc.returncode}: {text}")
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"postgres not accepting connections on {self.host}:{self.port} after "
                    f"{START_S} s: {self.log.read_text(errors='replace')}"
                )
            time.sleep(0.02)
        return True

    def _accepts(self, proc: subprocess.Popen[bytes]) -> bool:
        if proc.poll() is not None:
            return False
        try:
            with psycopg.connect(self.libpq_url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT: nothing to keep), SIGKILL if it lingers; then the
        directory goes. Safe to call twice, and on a server that never started."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_S)
        finally:
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self) -> str:
        """A new empty database `t_<random>`; its name."""
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.libpq_url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Dropped even with connections still open (a test's engine not disposed)."""
        with psycopg.connect(self.libpq_url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh database for the block, its SQLAlchemy URL; dropped at the end."""
        name = self.create_database()
        try:
            yield self.url_for(name)
        finally:
            self.drop_database(name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
