"""`treadctl clinic`: the clinic service. One TaskGroup: the broker link (records in, acks and
commands out, the treadmills' live tiles), the tiles' staleness check, the web API (uvicorn) and
the weekly progression proposals.

It never moves a belt by itself and no daemon needs it: a treadmill keeps its own records and
safety. The database opens (and migrates) before anything else; READY=1 once the API listens,
whether or not the broker is reachable (records wait on the daemons until it is).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import NoReturn

import structlog

from treadctl.extras import CLINIC, MissingExtraError

try:
    import uvicorn
except ModuleNotFoundError as exc:  # the daemon's install has no web server
    raise MissingExtraError(CLINIC, "the clinic service", exc.name) from exc

from treadctl.clinic.api import ClinicApi
from treadctl.clinic.broker import BrokerLink
from treadctl.clinic.database import Database, default_url, describe, open_database
from treadctl.clinic.errors import FormError
from treadctl.clinic.ingest import store_record
from treadctl.clinic.prescriptions import programs_of
from treadctl.clinic.steps import propose_due
from treadctl.config.models import Settings
from treadctl.core.program import Program
from treadctl.sdnotify import Notifier

log = structlog.get_logger("treadctl.clinic")

Clock = Callable[[], datetime]
PROPOSE_EVERY_S = 3600.0  # a week's proposal appears within the hour after the week ends
STARTUP_S = 20.0  # for uvicorn to start serving on the bound socket
STOP_S = 3.0  # uvicorn's graceful shutdown; then its connections are dropped


class ListenError(Exception):
    """The web API cannot listen where it was told to."""


def listen(host: str, port: int) -> socket.socket:
    try:
        server = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise ListenError(
            f"clinic.host/clinic.port: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    # Accepted connections inherit it (Linux): the live stream's small writes and the e-stop's
    # answer are not held by Nagle behind a tablet's delayed ACK. asyncio sets it only on
    # sockets made with IPPROTO_TCP, which create_server's are not.
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return server


class _Server(uvicorn.Server):
    """uvicorn inside our TaskGroup: the service handles the signals, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ClinicService:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        database_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.url = database_url or settings.clinic.database or default_url()
        self.stop = asyncio.Event()
        self.notifier = Notifier()
        self.database: Database | None = None
        self.broker: BrokerLink | None = None
        self.server: _Server | None = None
        self.api: ClinicApi | None = None

    async def _store(self, device: str, payload: bytes) -> str:
        """Parse and store one record on a worker thread (a record is MBs of JSON)."""
        database = self.database
        assert database is not None

        def work() -> str:
            try:
                document = json.loads(payload)
            except ValueError as exc:
                raise FormError(f"session record: not JSON ({exc})") from None
            with database.session() as db:
                session_id, new = store_record(db, document, now=self.clock())
            log.info("session record stored", device=device, session=session_id, new=new)
            return session_id

        return await asyncio.to_thread(work)

    async def _propose(self, programs: dict[str, Program]) -> NoReturn:
        database = self.database
        assert database is not None
        while True:
            now = self.clock()

            def work(now: datetime = now) -> int:
                with database.session() as db:
                    return len(propose_due(db, programs, today=now.date(), now=now))

            try:
                if made := await asyncio.to_thread(work):
                    log.info("progression steps proposed", count=made)
            except Exception:  # a database hiccup: next hour again
                log.exception("progression proposals failed")
            await asyncio.sleep(PROPOSE_EVERY_S)

    async def run(self, on_ready: Callable[[ClinicService], None] | None = None) -> int:
        self.database = await asyncio.to_thread(open_database, self.url)
        log.info("clinic database open", database=describe(self.database.url))
        try:
            return await self._run(self.database, on_ready)
        finally:
            self.database.close()

    async def _run(
        self, database: Database, on_ready: Callable[[ClinicService], None] | None
    ) -> int:
        programs = await asyncio.to_thread(programs_of, self.settings)
        self.broker = BrokerLink(self.settings.mqtt, self._store)
        self.api = api = ClinicApi(database, programs, self.broker, clock=self.clock)
        config = uvicorn.Config(
            api.app(),
            host=self.settings.clinic.host,
            port=self.settings.clinic.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(STOP_S),
            ssl_certfile=self.settings.clinic.tls_certfile,
            ssl_keyfile=self.settings.clinic.tls_keyfile,
        )
        self.server = server = _Server(config)
        listening = listen(self.settings.clinic.host, self.settings.clinic.port)
        async with asyncio.TaskGroup() as tg:
            linking = tg.create_task(self.broker.run(), name="treadctl.clinic.broker")
            serving = tg.create_task(server.serve([listening]), name="treadctl.clinic.api")
            proposing = tg.create_task(self._propose(programs), name="treadctl.clinic.progression")
            staling = tg.create_task(self.broker.check_staleness(), name="treadctl.clinic.stale")
            async with asyncio.timeout(STARTUP_S):  # bounded: systemd's start timeout is longer
                while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
                    await asyncio.sleep(0.01)
            if serving.done():
                await serving  # its error, if any
                raise ListenError("the web API ended before it started")
            log.info(
                "clinic service ready",
                api=f"{self.scheme}://{self.settings.clinic.host}:{self.port}",
                broker=f"{self.settings.mqtt.host}:{self.settings.mqtt.port}",
            )
            self.notifier.ready("serving")
            if on_ready is not None:
                on_ready(self)
            await self.stop.wait()
            self.notifier.stopping("stopping")
            api.treadmills.hub.close()  # live pages' streams end, so uvicorn need not wait
            server.should_exit = True
            proposing.cancel()
            staling.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_S + 2):
                    await asyncio.shield(serving)
            serving.cancel()
            linking.cancel()  # says `offline` on its way out, bounded
        return 0

    @property
    def scheme(self) -> str:
        return "https" if self.settings.clinic.tls_certfile is not None else "http"

    @property
    def port(self) -> int:
        """The port actually bound (the configured one, or the kernel's choice for 0)."""
        server = self.server
        if server is not None and server.servers:
            for sock in server.servers[0].sockets:
                return int(sock.getsockname()[1])
        return self.settings.clinic.port


async def run_clinic(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[ClinicService], None] | None = None,
    database_url: str | None = None,
) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT)."""
    service = ClinicService(settings, database_url=database_url)
    if stop is not None:
        service.stop = stop
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, service.stop.set)
    try:
        return await service.run(on_ready)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        service.notifier.close()
