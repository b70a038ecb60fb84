"""A person's report as one self-contained HTML page: CSS inline, charts as data: PNGs, nothing
loaded from elsewhere, so it can be mailed, archived or opened offline. Everything shown goes
through Jinja2's autoescape: names, notes and adverse-event texts are typed in by people."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from treadctl.extras import CLINIC, MissingExtraError

try:
    from jinja2 import Environment, PackageLoader, StrictUndefined, Template
except ModuleNotFoundError as exc:  # the daemon's install has no Jinja2
    raise MissingExtraError(CLINIC, "a person's report", exc.name) from exc

from treadctl.clinic.report import charts
from treadctl.clinic.report.content import build
from treadctl.clinic.views import PersonRecord


@dataclass(frozen=True, slots=True)
class _Shown:
    key: str
    title: str
    uri: str  # data:image/png;base64,…


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("treadctl.clinic.report", "templates"),
        autoescape=True,  # every file here is HTML
        undefined=StrictUndefined,  # a misspelt name fails the test, not the physician's page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html")


def render_html(record: PersonRecord, *, names: bool = False) -> str:
    """The page; the person by pseudonym unless `names`."""
    shown = [
        _Shown(chart.key, chart.title, charts.png_data_uri(chart, record))
        for chart in charts.charts_for(record)
    ]
    return _template().render(report=build(record, names=names), charts=shown)
