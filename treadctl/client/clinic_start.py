"""`treadctl start --person ID`: what the clinic knows about the person, resolved before the
start is sent (docs/clinic.md, Starting a session for a person).

When a clinic database is configured (`clinic.database`) or the default one exists, the person
must be known there and active: their active prescription gives the program and parameters
(or the program named, with their saved parameters), their limits go with the start, and
anything refused (unknown or archived person, limits the program breaks) is refused here,
before anything is sent. Without a clinic database the start goes as given (decisions §20).
"""

from __future__ import annotations

from typing import Any

from treadctl.cli_support import CommandError, UsageError
from treadctl.clinic.location import default_path
from treadctl.config.models import Settings
from treadctl.core.person import PersonLimits, combined


def _database_url(settings: Settings) -> str | None:
    if settings.clinic.database is not None:
        return settings.clinic.database
    path = default_path()
    return f"sqlite:///{path}" if path.is_file() else None


def resolve(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """`body` (person, maybe program, parameters, limits) as the clinic resolves it."""
    url = _database_url(settings)
    if url is None:
        return body
    from treadctl.clinic.database import DatabaseError, open_database  # noqa: PLC0415
    from treadctl.clinic.errors import ClinicError, FormError  # noqa: PLC0415
    from treadctl.clinic.prescriptions import programs_of, resolve_start  # noqa: PLC0415

    try:
        database = open_database(url)
    except DatabaseError as exc:
        raise CommandError(f"the clinic database: {exc}") from exc
    try:
        with database.session() as db:
            plan = resolve_start(
                db,
                body["person"],
                programs_of(settings),
                program=body.get("program"),
                parameters=body.get("parameters"),
            )
    except FormError as exc:
        raise UsageError(str(exc)) from exc
    except ClinicError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        database.close()
    resolved = plan.payload()
    if "limits" in body:  # --limit tightens the person's stored limits, never loosens them
        stored = PersonLimits.from_mapping(resolved.get("limits", {}))
        resolved["limits"] = combined(stored, PersonLimits.from_mapping(body["limits"])).as_dict()
    return resolved
