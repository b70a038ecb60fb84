"""People and a person's record as pages: the list with the form to add someone, and one
person's limits, prescriptions, progression proposals, adherence, sessions and measures, with
the forms that change them. The forms post JSON to the web API (static/forms.js), which checks
every field: these pages only read."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from treadctl.extras import CLINIC, MissingExtraError

try:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Route
except ModuleNotFoundError as exc:  # the daemon's install has no web framework
    raise MissingExtraError(CLINIC, "the dashboard", exc.name) from exc

from treadctl.clinic import people, record
from treadctl.clinic.errors import NotFoundError
from treadctl.clinic.views import ADVERSE_CATEGORIES, Person, PersonRecord
from treadctl.clinic.web.pages import missing, program_choices, rendered

if TYPE_CHECKING:
    from treadctl.clinic.api import ClinicApi

# The limits a person may have (forms.LimitsForm), with their labels and units.
LIMITS = (
    ("max_speed_backward_kmh", "Top speed walking backward", "km/h", "0.1"),
    ("max_speed_forward_kmh", "Top speed walking forward", "km/h", "0.1"),
    ("max_incline_pct", "Top incline", "%", "0.5"),
    ("heart_rate_max_bpm", "Heart rate ceiling", "bpm", "1"),
)


def pairs(values: dict[str, float]) -> str:
    """Saved parameters as the form's text: one `name = value` a line."""
    return "\n".join(f"{name} = {value:g}" for name, value in values.items())


def routes(api: ClinicApi) -> list[BaseRoute]:
    async def people_page(request: Request) -> Response:
        archived = request.query_params.get("archived", "") in {"1", "true", "yes"}

        def work() -> list[Person]:
            with api.db.session() as db:
                return people.list_people(db, archived=archived)

        return await rendered(
            request,
            "people.html",
            page="people",
            title="People",
            people=await asyncio.to_thread(work),
            archived=archived,
            limits=LIMITS,
        )

    async def person_page(request: Request) -> Response:
        person_id, now = request.path_params["person"], api.now()

        def work() -> PersonRecord:
            with api.db.session() as db:
                return record.person_record(db, person_id, now=now)

        try:
            found = await asyncio.to_thread(work)
        except NotFoundError:
            return await missing(request, person_id, "a person's id")
        return await rendered(
            request,
            "person.html",
            page="people",
            title=found.person.id,
            record=found,
            limits=LIMITS,
            pairs=pairs,
            programs=program_choices(api.programs),
            categories=ADVERSE_CATEGORIES,
            today=now.date().isoformat(),
            pending=[s for s in found.steps if s.status == "pending"],
            sessions=list(reversed(found.sessions)),  # the newest first
        )

    return [
        Route("/people", people_page, methods=["GET"]),
        Route("/people/{person}", person_page, methods=["GET"]),
    ]
