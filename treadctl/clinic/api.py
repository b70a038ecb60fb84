"""The clinic service's web API (JSON over HTTP, docs/clinic.md): what the CLI does, for the
dashboard and for a clinic's own systems.

Errors are JSON `{"error": {"code", "message"}}`: 400 bad input (the message names the field),
404 unknown id, 409 a conflict (archived person, limits that forbid the program), 502/504 the
treadmill did not take or answer a command, 503 no broker connection (an e-stop not sent).
Database work runs in a worker thread. The live overview (`/api/treadmills`, `/api/live`) and
the treadmill commands are served from the broker link's tiles (fleet.py, live.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import structlog

from treadctl.extras import CLINIC, MissingExtraError

try:
    from sqlalchemy.orm import Session
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute, Route
except ModuleNotFoundError as exc:  # the daemon's install has no web framework
    raise MissingExtraError(CLINIC, "the clinic service's web API", exc.name) from exc

from treadctl.clinic import audit, people, prescriptions, record, steps
from treadctl.clinic.annotations import annotate, session_row
from treadctl.clinic.broker import BrokerLink, NoAnswerError, NotConnectedError
from treadctl.clinic.database import Database
from treadctl.clinic.errors import (
    ClinicError,
    ConflictError,
    ForbiddenError,
    FormError,
    NotFoundError,
)
from treadctl.clinic.forms import (
    AnnotationForm,
    MeasureForm,
    PersonEdit,
    PersonForm,
    PrescriptionForm,
    PreSessionCheck,
    parse,
)
from treadctl.clinic.live import TreadmillRoutes
from treadctl.clinic.views import PersonRecord
from treadctl.clinic.web import pages
from treadctl.clinic.web.account_routes import AccountRoutes
from treadctl.clinic.web.auth import Logins, RequireLogin, require_admin, sender, user
from treadctl.clinic.web.bodies import json_body
from treadctl.clinic.web.login import LoginRoutes
from treadctl.core.program import Program

log = structlog.get_logger("treadctl.clinic.api")
Clock = Callable[[], datetime]
T = TypeVar("T")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def ok(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_plain(value), status_code=status)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


_STATUS: tuple[tuple[type[ClinicError], int, str], ...] = (
    (FormError, 400, "bad_request"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (ForbiddenError, 403, "forbidden"),
    (NoAnswerError, 504, "no_answer"),
    (NotConnectedError, 503, "no_broker"),
)


def _translate(exc: ClinicError) -> JSONResponse:
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return error(status, code, str(exc))
    return error(400, "refused", str(exc))


class ClinicApi:
    """Routes over one database, the program library and the broker link."""

    def __init__(
        self,
        database: Database,
        programs: Mapping[str, Program],
        broker: BrokerLink | None,
        *,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.db = database
        self.programs = programs
        self.broker = broker
        self.now = clock
        self.treadmills = TreadmillRoutes(broker)
        self.logins = Logins(self._tx, clock=clock)
        self.login = LoginRoutes(self._tx, self.logins, clock=clock)

    def app(self) -> Starlette:
        def route(path: str, handler: Callable[[Request], Awaitable[Response]], *methods: str):  # type: ignore[no-untyped-def]  # noqa: ANN202
            return Route(path, self._guarded(handler), methods=list(methods))

        def admin(path: str, handler: Callable[[Request], Awaitable[Response]], *methods: str):  # type: ignore[no-untyped-def]  # noqa: ANN202
            async def checked(request: Request) -> Response:
                require_admin(request)
                return await handler(request)

            return route(path, checked, *methods)

        def sent(path: str, handler: Callable[[Request], Awaitable[Response]], command: str):  # type: ignore[no-untyped-def]  # noqa: ANN202
            return route(path, self._logged(handler, command), "POST")

        accounts = AccountRoutes(self._tx, self.logins, clock=self.now)

        return Starlette(
            routes=[
                route("/api/health", self.health, "GET"),
                route("/api/people", self.people_list, "GET"),
                admin("/api/people", self.people_add, "POST"),
                route("/api/people/{person}", self.person_show, "GET"),
                admin("/api/people/{person}", self.person_edit, "PATCH"),
                admin("/api/people/{person}", self.person_delete, "DELETE"),
                admin("/api/people/{person}/archive", self.person_archive, "POST"),
                route("/api/people/{person}/record", self.person_record, "GET"),
                route("/api/people/{person}/report", self.person_report, "GET"),
                route("/api/people/{person}/measures", self.measure_add, "POST"),
                route("/api/prescriptions", self.prescriptions_list, "GET"),
                route("/api/prescriptions", self.prescription_add, "POST"),
                route("/api/prescriptions/{id:int}/end", self.prescription_end, "POST"),
                route("/api/steps", self.steps_list, "GET"),
                route("/api/steps/{id:int}/{decision}", self.step_decide, "POST"),
                route("/api/sessions", self.sessions_list, "GET"),
                route("/api/sessions/{session}", self.session_show, "GET"),
                route("/api/sessions/{session}/annotation", self.session_annotate, "PUT"),
                route("/api/sessions/{session}/fit", self.session_fit, "GET"),
                route("/api/treadmills", self.treadmills.overview, "GET"),
                route("/api/live", self.treadmills.live, "GET"),
                route("/api/treadmills/{device}/start", self.treadmill_start, "POST"),
                sent("/api/treadmills/{device}/estop", self.treadmills.estop, "estop"),
                sent("/api/treadmills/{device}/{command}", self.treadmills.command, ""),
                route("/api/commands", self.commands_list, "GET"),
                *(self._guard(r) for r in self.login.routes()),
                *(self._guard(r) for r in accounts.routes()),
                *pages.routes(self),  # the dashboard (treadctl/clinic/web)
            ],
            middleware=[Middleware(RequireLogin, found=self.logins)],
        )

    def _guard(self, route: BaseRoute) -> BaseRoute:
        assert isinstance(route, Route)
        return Route(route.path, self._guarded(route.endpoint), methods=route.methods)

    def _logged(
        self, handler: Callable[[Request], Awaitable[Response]], command: str
    ) -> Callable[[Request], Awaitable[Response]]:
        """Every command from the dashboard goes in the command log with who sent it, after it
        was sent (an e-stop is never held back by the database) and whether it was taken."""

        async def logged(request: Request) -> Response:
            outcome = "error"
            try:
                response = await handler(request)
            except ClinicError as exc:
                outcome = f"refused: {exc}"
                raise
            else:
                status = response.status_code
                outcome = audit.ACCEPTED if status < 300 else f"refused: HTTP {status}"
                return response
            finally:
                command_name = command or str(request.path_params.get("command", ""))
                await self._log(request, command_name, {}, outcome)

        return logged

    async def _log(
        self, request: Request, command: str, body: dict[str, Any], outcome: str
    ) -> None:
        device, now = str(request.path_params.get("device", "")), self.now()
        who = await sender(request, self.logins)
        try:
            await self._tx(
                lambda db: audit.log_command(
                    db,
                    now=now,
                    username=who,
                    device=device,
                    command=command,
                    body=body,
                    outcome=outcome,
                )
            )
        except Exception:  # the command went; a log that failed is reported, not raised
            log.exception("the command log failed", device=device, command=command)

    async def commands_list(self, request: Request) -> Response:
        device = request.query_params.get("device") or None
        found = await self._tx(lambda db: audit.recent(db, device=device))
        return ok(found)

    async def _tx(self, work: Callable[[Session], T]) -> T:
        """`work` in one transaction, on a worker thread: the event loop (and the broker link
        on it) never waits for the database."""

        def run() -> T:
            with self.db.session() as db:
                return work(db)

        return await asyncio.to_thread(run)

    @staticmethod
    def _guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ClinicError as exc:
                return _translate(exc)

        return guarded

    # --- people ------------------------------------------------------------------------------

    async def health(self, _request: Request) -> Response:
        connected = self.broker is not None and self.broker.connected.is_set()
        return ok({"database": "ok", "broker": "connected" if connected else "disconnected"})

    async def people_list(self, request: Request) -> Response:
        archived = _flag(request, "archived")
        return ok(await self._tx(lambda db: people.list_people(db, archived=archived)))

    async def people_add(self, request: Request) -> Response:
        form, now = parse(PersonForm, await json_body(request)), self.now()
        return ok(await self._tx(lambda db: people.add_person(db, form, now=now)), 201)

    async def person_show(self, request: Request) -> Response:
        person = request.path_params["person"]
        return ok(await self._tx(lambda db: people.get_person(db, person)))

    async def person_edit(self, request: Request) -> Response:
        person, body = request.path_params["person"], await json_body(request)
        restore = isinstance(body, dict) and body.pop("restore", False) is True
        form = parse(PersonEdit, body)
        return ok(await self._tx(lambda db: people.edit_person(db, person, form, restore=restore)))

    async def person_archive(self, request: Request) -> Response:
        person, now = request.path_params["person"], self.now()
        return ok(await self._tx(lambda db: people.archive_person(db, person, now=now)))

    async def person_delete(self, request: Request) -> Response:
        person = request.path_params["person"]
        return ok(await self._tx(lambda db: people.delete_person(db, person)))

    async def _record(self, request: Request) -> PersonRecord:
        person, now = request.path_params["person"], self.now()
        return await self._tx(lambda db: record.person_record(db, person, now=now))

    async def person_record(self, request: Request) -> Response:
        return ok(await self._record(request))

    async def person_report(self, request: Request) -> Response:
        from treadctl.clinic.report import render_html, render_pdf  # noqa: PLC0415 - matplotlib

        names = _flag(request, "names")
        found = await self._record(request)
        if request.query_params.get("format", "html") == "pdf":
            pdf = await asyncio.to_thread(render_pdf, found, names=names)
            return Response(pdf, media_type="application/pdf")
        page = await asyncio.to_thread(render_html, found, names=names)
        return Response(page, media_type="text/html; charset=utf-8")

    async def measure_add(self, request: Request) -> Response:
        body = await json_body(request)
        if isinstance(body, dict):
            body = {**body, "person": request.path_params["person"]}
        form = parse(MeasureForm, body)
        return ok(await self._tx(lambda db: people.add_measure(db, form)), 201)

    # --- prescriptions and progression -------------------------------------------------------

    async def prescriptions_list(self, request: Request) -> Response:
        person = request.query_params.get("person")
        return ok(await self._tx(lambda db: prescriptions.list_prescriptions(db, person)))

    async def prescription_add(self, request: Request) -> Response:
        form, now = parse(PrescriptionForm, await json_body(request)), self.now()
        made = await self._tx(
            lambda db: prescriptions.add_prescription(db, form, self.programs, now=now)
        )
        return ok(made, 201)

    async def prescription_end(self, request: Request) -> Response:
        number, now = request.path_params["id"], self.now()
        return ok(await self._tx(lambda db: prescriptions.end_prescription(db, number, now=now)))

    async def steps_list(self, request: Request) -> Response:
        pending, person = _flag(request, "pending"), request.query_params.get("person")
        return ok(
            await self._tx(lambda db: steps.list_steps(db, person_id=person, pending=pending))
        )

    async def step_decide(self, request: Request) -> Response:
        decision = request.path_params["decision"]
        if decision not in {"approve", "reject"}:
            raise NotFoundError(f"{decision!r}: approve or reject")
        account = user(request)
        assert account is not None  # the middleware lets only a login through
        by = account.username  # the login decides, whatever a body might claim
        number, now, approve = request.path_params["id"], self.now(), decision == "approve"
        return ok(
            await self._tx(
                lambda db: steps.decide(
                    db, number, approve=approve, by=by, now=now, programs=self.programs
                )
            )
        )

    # --- sessions ----------------------------------------------------------------------------

    async def sessions_list(self, request: Request) -> Response:
        person, device = request.query_params.get("person"), request.query_params.get("device")
        return ok(
            await self._tx(lambda db: record.list_sessions(db, person_id=person, device_id=device))
        )

    async def session_show(self, request: Request) -> Response:
        session = request.path_params["session"]
        return ok(await self._tx(lambda db: record.get_session(db, session)))

    async def session_annotate(self, request: Request) -> Response:
        form, now = parse(AnnotationForm, await json_body(request)), self.now()
        session = request.path_params["session"]
        return ok(await self._tx(lambda db: annotate(db, session, form, now=now)))

    async def session_fit(self, request: Request) -> Response:
        from treadctl.clinic.fit import fit_bytes  # noqa: PLC0415 - fit-tool, when asked

        session = request.path_params["session"]
        document = await self._tx(lambda db: session_row(db, session).document)
        try:
            data = await asyncio.to_thread(fit_bytes, document)  # about 1 s for 30 min at 5 Hz
        except ValueError as exc:
            raise ConflictError(f"no FIT file for this session: {exc}") from exc
        return Response(
            data,
            media_type="application/vnd.ant.fit",
            headers={"Content-Disposition": f'attachment; filename="{session}.fit"'},
        )

    # --- treadmills --------------------------------------------------------------------------

    async def treadmill_start(self, request: Request) -> Response:
        """Start a session for a person on a treadmill: resolved here (prescription, saved
        parameters, limits), enforced there (the daemon takes the tighter limits)."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("person"), str):
            raise FormError("person: the person's id")
        person, program, parameters = body["person"], body.get("program"), body.get("parameters")
        if program is not None and not isinstance(program, str):
            raise FormError("program: a program name")
        if parameters is not None and (
            not isinstance(parameters, dict)
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in parameters.values()
            )
        ):
            raise FormError("parameters: an object of numbers")
        check = parse(PreSessionCheck, body["check"]) if "check" in body else None
        plan = await self._tx(
            lambda db: prescriptions.resolve_start(
                db, person, self.programs, program=program, parameters=parameters
            )
        )
        if self.broker is None:
            raise NoAnswerError("the clinic service has no broker connection")
        logged: dict[str, Any] = {**plan.payload(), "prescription": plan.prescription_id}
        if check is not None:
            logged["check"] = check.model_dump()
        outcome = "error"
        try:
            answer = await self.broker.command(
                request.path_params["device"], "start", plan.payload()
            )
            if not answer.get("ok"):
                problem = answer.get("error") or {}
                outcome = f"refused: {problem.get('code', 'refused')}"
                return error(
                    502, str(problem.get("code", "refused")), str(problem.get("message", answer))
                )
            outcome = audit.ACCEPTED
        except ClinicError as exc:
            outcome = f"refused: {exc}"
            raise
        finally:
            await self._log(request, "start", logged, outcome)
        return ok({"ok": True, "sent": plan.payload(), "prescription": plan.prescription_id})


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in {"1", "true", "yes"}
