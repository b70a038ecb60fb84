"""The optional dependencies (pyproject's extras), which the daemon does not need: a module that
needs one imports it where it is used and raises `MissingExtraError` naming the extra to install
(docs/install.md)."""

from __future__ import annotations

CHARTS = "charts"  # matplotlib (and numpy): `treadctl sessions plot`, the demo's chart
CLINIC = "clinic"  # the clinic service: SQLAlchemy, Alembic, psycopg, Starlette, uvicorn, fit-tool
DEMO = "demo"  # the charts, the clinic and the embedded broker (amqtt): `treadctl demo`


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""

    def __init__(self, extra: str, purpose: str, missing: str | None) -> None:
        missing = missing and missing.partition(".")[0]  # the package, not its submodule
        super().__init__(
            f"{purpose} needs {missing or 'a package'} from the '{extra}' extra, which is not "
            f"installed: pip install 'treadctl[{extra}]' (or uv sync, in a clone)",
            name=missing,
        )
        self.extra = extra
