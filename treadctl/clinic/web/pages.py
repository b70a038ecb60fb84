"""The dashboard's pages, served by the clinic service's Starlette app beside the web API.

Pages are rendered here (Jinja2, autoescaped); the tiles are filled and kept live in the browser
by static/live.js from the API's `/api/live` stream, and the forms post JSON to the web API
through static/api.js (one function, so the CSRF header is set in one place). Nothing comes from
a CDN: the clinic's LAN may be offline. The people and records pages are person_pages.py and
session_pages.py.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadctl.extras import CLINIC, MissingExtraError

try:
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import BaseRoute, Mount, Route
    from starlette.staticfiles import StaticFiles
except ModuleNotFoundError as exc:  # the daemon's install has no web framework
    raise MissingExtraError(CLINIC, "the dashboard", exc.name) from exc

from treadctl.clinic import people
from treadctl.clinic.views import Person

if TYPE_CHECKING:
    from collections.abc import Mapping

    from treadctl.clinic.api import ClinicApi
    from treadctl.core.program import Program

STATIC = Path(__file__).parent / "static"
# A device id as the daemons use it in topics: anything else is not a treadmill's page.
DEVICE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# The page's own files only: no inline script, nothing from elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a form POST says `Origin: null` (web/auth.py)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("treadctl.clinic.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _page(request: Request, name: str, context: dict[str, Any]) -> str:
    context.setdefault("user", getattr(request.state, "user", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", None))
    return _env().get_template(name).render(**context)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page, with who is logged in and the CSRF token (when accounts set them)."""
    return HTMLResponse(_page(request, name, context), status_code=status, headers=HEADERS)


async def rendered(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """As render, on a worker thread: a template's first use compiles it (tens of ms for a
    person's page) and a long record takes a while to render; the event loop carries the
    live tiles and the e-stop meanwhile."""
    page = await asyncio.to_thread(_page, request, name, context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


async def missing(request: Request, what: str, kind: str) -> HTMLResponse:
    """404: `what` is not a known `kind` (a treadmill's id, a person, a session)."""
    return await rendered(
        request, "missing.html", 404, page="", title="No such page", what=what, kind=kind
    )


def program_choices(programs: Mapping[str, Program]) -> list[Program]:
    return [programs[name] for name in sorted(programs)]


def routes(api: ClinicApi) -> list[BaseRoute]:
    """The dashboard's routes, for the API's app to include."""
    from treadctl.clinic.web import person_pages, session_pages  # noqa: PLC0415 - they import this

    async def overview(request: Request) -> Response:
        return await rendered(request, "overview.html", page="overview", title="Overview")

    async def treadmill(request: Request) -> Response:
        device = request.path_params["device"]
        if not DEVICE.fullmatch(device):
            return await missing(request, device, "a treadmill's id")

        def work() -> list[Person]:
            with api.db.session() as db:
                return people.list_people(db)

        return await rendered(
            request,
            "treadmill.html",
            page="treadmill",
            title=device,
            device=device,
            people=await asyncio.to_thread(work),
            programs=program_choices(api.programs),
        )

    return [
        Route("/", overview, methods=["GET"]),
        Route("/treadmills/{device}", treadmill, methods=["GET"]),
        *person_pages.routes(api),
        *session_pages.routes(api),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
