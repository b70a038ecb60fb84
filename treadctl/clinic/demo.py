"""The clinic's part of `treadctl demo`: the clinic service on its own SQLite file beside the
demo's session database, one person with a prescription, and their report at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from treadctl.clinic import accounts
from treadctl.clinic.database import Database
from treadctl.clinic.errors import NotFoundError
from treadctl.clinic.forms import LimitsForm, PersonForm, PrescriptionForm
from treadctl.clinic.people import add_person, get_person
from treadctl.clinic.prescriptions import (
    StartPlan,
    active_prescription,
    add_prescription,
    programs_of,
    resolve_start,
)
from treadctl.clinic.record import person_record
from treadctl.clinic.service import ClinicService
from treadctl.clinic.tables import SessionRow
from treadctl.config.models import ClinicConfig, Settings

PERSON = "demo-walker"  # a pseudonym, as every person id is
ACCOUNT = "demo"  # the dashboard's login for the demo: an admin, a new password each run
LIMIT_BACKWARD_KMH = 2.5
READY_S = 20.0


@dataclass
class DemoClinic:
    service: ClinicService
    database: Database
    settings: Settings

    @property
    def api(self) -> str:
        return f"http://{self.settings.clinic.host}:{self.service.port}"

    def prepare(self, program: str) -> StartPlan:
        """The demo's person and a prescription of `program` (made once, kept between demos);
        returns what the start sends: program, parameters, person, limits."""
        now = datetime.now(UTC)
        programs = programs_of(self.settings)
        with self.database.session() as db:
            try:
                get_person(db, PERSON)
            except NotFoundError:
                limits = LimitsForm(max_speed_backward_kmh=LIMIT_BACKWARD_KMH)
                form = PersonForm(id=PERSON, notes="made by treadctl demo", limits=limits)
                add_person(db, form, now=now)
            current = active_prescription(db, PERSON)
            if current is None or current.program != program:
                monday = now.date() - timedelta(days=now.weekday())
                prescription = PrescriptionForm(
                    person=PERSON,
                    program=program,
                    sessions_per_week=3,
                    weeks=4,
                    start_date=monday,
                )
                add_prescription(db, prescription, programs, now=now)
            return resolve_start(db, PERSON, programs)

    def account(self) -> tuple[str, str]:
        """The demo's dashboard login: made once, given a new random password each run (shown
        on the demo's terminal only; the service listens on loopback)."""
        password = secrets.token_urlsafe(12)
        with self.database.session() as db:
            try:
                accounts.find(db, ACCOUNT)
            except NotFoundError:
                accounts.add_account(db, ACCOUNT, password, admin=True, now=datetime.now(UTC))
            else:
                accounts.set_password(db, ACCOUNT, password)
                accounts.enable(db, ACCOUNT)
        return ACCOUNT, password

    def has_session(self, session_id: str) -> bool:
        with self.database.session() as db:
            return db.get(SessionRow, session_id) is not None

    async def wait_for(self, session_id: str, timeout_s: float) -> bool:
        """Whether the daemon's record of the session reached the clinic within the time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not await asyncio.to_thread(self.has_session, session_id):  # noqa: ASYNC110 - a database, no event
                    await asyncio.sleep(0.1)
                return True
        return False

    def write_report(self, out: Path) -> Path:
        from treadctl.clinic.report import render_html  # noqa: PLC0415 - matplotlib

        with self.database.session() as db:
            found = person_record(db, PERSON, now=datetime.now(UTC))
        out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        page = render_html(found).encode()
        # health data, even under a pseudonym: readable by this user only
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(page)
        return out


@contextlib.asynccontextmanager
async def running(settings: Settings, directory: Path) -> AsyncIterator[DemoClinic]:
    """The clinic service on `directory`/clinic.db, its web API on a free loopback port."""
    clinic = ClinicConfig(database=f"sqlite:///{directory / 'clinic.db'}", port=0)
    settings = settings.model_copy(update={"clinic": clinic})
    service = ClinicService(settings)
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(lambda _s: ready.set()), name="treadctl.demo.clinic")
    waiting = asyncio.create_task(ready.wait(), name="treadctl.demo.clinic-ready")
    try:
        async with asyncio.timeout(READY_S):
            await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the service's error
        assert service.database is not None
        yield DemoClinic(service, service.database, settings)
    finally:
        waiting.cancel()
        service.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(10):
                await asyncio.gather(task, return_exceptions=True)
