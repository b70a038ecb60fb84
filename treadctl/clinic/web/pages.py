"""The dashboard's pages, served by the clinic service's Starlette app beside the web API.

Pages are rendered here (Jinja2, autoescaped); the tiles are filled and kept live in the browser
by static/live.js from the API's `/api/live` stream. Nothing comes from a CDN: the clinic's LAN
may be offline. No accounts yet: the service listens on loopback (docs/clinic.md).
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
    from treadctl.clinic.api import ClinicApi

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
    "Referrer-Policy": "no-referrer",
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


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    page = _env().get_template(name).render(**context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


def routes(api: ClinicApi) -> list[BaseRoute]:
    """The dashboard's routes, for the API's app to include."""

    async def overview(_request: Request) -> Response:
        return render("overview.html", page="overview", title="Overview")

    async def treadmill(request: Request) -> Response:
        device = request.path_params["device"]
        if not DEVICE.fullmatch(device):
            return render("missing.html", 404, page="", title="No such page", what=device)
        return render("treadmill.html", page="treadmill", title=device, device=device)

    async def people_page(_request: Request) -> Response:
        def work() -> list[Person]:
            with api.db.session() as db:
                return people.list_people(db)

        found = await asyncio.to_thread(work)
        return render("people.html", page="people", title="People", people=found)

    return [
        Route("/", overview, methods=["GET"]),
        Route("/treadmills/{device}", treadmill, methods=["GET"]),
        Route("/people", people_page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
