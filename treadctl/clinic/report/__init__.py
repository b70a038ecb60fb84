"""A person's report (docs/clinic.md, Report): one HTML page or a PDF, with charts. Needs the
`clinic` extra (Jinja2, matplotlib)."""

from __future__ import annotations

from treadctl.clinic.report.html import render_html
from treadctl.clinic.report.pdf import render_pdf

__all__ = ["render_html", "render_pdf"]
