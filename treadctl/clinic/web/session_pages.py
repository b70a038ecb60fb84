"""A session as a page: the dose prescribed against delivered, the deviations, the speed,
incline and heart-rate chart (a PNG drawn here, session_chart.py) and the annotation with its
form (posted to the web API by static/forms.js)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Route
except ModuleNotFoundError as exc:  # the daemon's install has no web framework
    raise MissingExtraError(CLINIC, "the dashboard", exc.name) from exc

from treadctl.clinic import record
from treadctl.clinic.annotations import session_row
from treadctl.clinic.errors import NotFoundError
from treadctl.clinic.prescriptions import get_prescription
from treadctl.clinic.views import ADVERSE_CATEGORIES, Deviation, Prescription, SessionDose
from treadctl.clinic.web.pages import HEADERS, missing, rendered

if TYPE_CHECKING:
    from treadctl.clinic.api import ClinicApi


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def number(value: float | None, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def _draw(document: dict[str, Any], deviations: tuple[Deviation, ...]) -> bytes:
    # matplotlib is imported on the worker thread too: its first import takes a second or two
    from treadctl.clinic.web.session_chart import session_png  # noqa: PLC0415

    return session_png(document, deviations)


def routes(api: ClinicApi) -> list[BaseRoute]:
    async def session_page(request: Request) -> Response:
        session_id = request.path_params["session"]

        def work() -> tuple[SessionDose, Prescription | None]:
            with api.db.session() as db:
                found = record.get_session(db, session_id)
                linked = found.prescription_id
                return found, None if linked is None else get_prescription(db, linked)

        try:
            found, prescription = await asyncio.to_thread(work)
        except NotFoundError:
            return await missing(request, session_id, "a session's id")
        user = getattr(request.state, "user", None)
        return await rendered(
            request,
            "session.html",
            page="people",
            title=f"Session {found.id}",
            session=found,
            prescription=prescription,
            note=found.annotation,
            existing_events=json.dumps(
                [dataclasses.asdict(e) for e in found.annotation.adverse_events]
                if found.annotation
                else []
            ),
            categories=ADVERSE_CATEGORIES,
            supervisor=getattr(user, "username", ""),
            minutes=minutes,
            number=number,
        )

    async def chart(request: Request) -> Response:
        session_id = request.path_params["session"]

        def work() -> tuple[dict[str, Any], tuple[Deviation, ...]]:
            with api.db.session() as db:
                row = session_row(db, session_id)
                return row.document, record.get_session(db, session_id).deviations

        try:
            document, deviations = await asyncio.to_thread(work)
        except NotFoundError:
            return Response(b"no such session", 404, media_type="text/plain")
        png = await asyncio.to_thread(_draw, document, deviations)
        return Response(png, media_type="image/png", headers=HEADERS)

    return [
        Route("/sessions/{session}", session_page, methods=["GET"]),
        Route("/sessions/{session}/chart.png", chart, methods=["GET"]),
    ]
