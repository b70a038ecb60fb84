"""The dashboard's people and records pages over plain HTTP, from the real clinic service on a
real broker and a SQLite file: each renders from the database, names and notes are escaped,
an unknown person or session is a 404 page, and a session's chart is a PNG."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clinic.documents import session_document, store_sessions
from clinic.service_rig import RunningClinic, clinic_settings, running_clinic
from mqtt.brokers import Broker

STARTED = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
PROGRAM = "alghadir2019-knee-oa"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
async def clinic(broker: Broker, tmp_path: Path) -> AsyncIterator[RunningClinic]:
    url = f"sqlite:///{tmp_path}/clinic.db"
    settings = clinic_settings(broker, url, f"pages-{secrets.token_hex(3)}")
    async with running_clinic(settings) as running:
        person = {"id": "mrs-k", "name": SCRIPT, "notes": SCRIPT, "limits": {"max_incline_pct": 2}}
        assert (await running.http.call("POST", "/api/people", person))[0] == 201
        rx = {
            "person": "mrs-k",
            "program": PROGRAM,
            "parameters": {"comfortable_backward_kmh": 1.2},
            "sessions_per_week": 3,
            "weeks": 4,
            "start_date": STARTED.date().isoformat(),
        }
        assert (await running.http.call("POST", "/api/prescriptions", rx))[0] == 201
        document = session_document("s-1", started=STARTED, ended_how="stopped")
        await asyncio.to_thread(store_sessions, url, document)
        yield running


async def page(clinic: RunningClinic, path: str, status: int = 200) -> str:
    got, body = await clinic.http.call("GET", path)
    assert got == status, (path, body)
    assert isinstance(body, bytes)
    return body.decode()


async def test_people_and_a_person_page(clinic: RunningClinic) -> None:
    listing = await page(clinic, "/people")
    assert '<a href="/people/mrs-k">mrs-k</a>' in listing
    assert 'id="add-person"' in listing

    person = await page(clinic, "/people/mrs-k")
    assert SCRIPT not in person  # the name and notes are text, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in person
    assert "2.0 %" in person  # the incline limit
    assert "<strong>active</strong>" in person  # the prescription
    assert '<a href="/sessions/s-1">' in person
    assert "of 3" in person  # adherence: sessions of the target, week by week
    assert 'href="/api/people/mrs-k/report?format=pdf"' in person


async def test_a_session_page_and_its_chart(clinic: RunningClinic) -> None:
    session = await page(clinic, "/sessions/s-1")
    assert 'src="/sessions/s-1/chart.png"' in session
    assert "<strong>stop</strong> at" in session  # the deviation
    assert 'data-path="/api/sessions/s-1/annotation"' in session
    status, png = await clinic.http.call("GET", "/sessions/s-1/chart.png")
    assert status == 200
    assert isinstance(png, bytes)
    assert png.startswith(b"\x89PNG")


async def test_unknown_ids_are_404_pages_and_escaped(clinic: RunningClinic) -> None:
    for path in ("/people/nobody", "/sessions/nothing", "/people/%3Cscript%3E"):
        body = await page(clinic, path, 404)
        assert "No such page" in body
        assert "<script>" not in body
    assert "&lt;script&gt;" in await page(clinic, "/people/%3Cscript%3E", 404)
    status, _ = await clinic.http.call("GET", "/sessions/nothing/chart.png")
    assert status == 404


async def test_the_treadmill_page_offers_people_programs_and_the_check(
    clinic: RunningClinic,
) -> None:
    body = await page(clinic, "/treadmills/tm-1")
    assert '<option value="mrs-k">' in body
    assert f'<option value="{PROGRAM}">' in body
    assert 'id="check-pain"' in body
    assert 'id="check-clip"' in body
    assert 'id="check-supervisor"' in body
    assert 'id="start-button" disabled' in body
