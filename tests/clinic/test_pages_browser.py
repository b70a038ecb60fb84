"""The people and records pages and the start form's pre-session check in a real browser
(Debian's Chromium, tests/clinic/browser.py) against the real clinic service on a real broker
and a SQLite file: a person added (a bad limit refused next to its field, nothing stored), a
progression proposal approved, a session's chart and its annotation form, and a start whose
request carries the check, followed by the link to annotate the session that just ended. The
treadmill here is a plain MQTT client playing the daemon's part (state, answers, the record)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from playwright.async_api import Locator, Page, expect

from clinic.browser import Chromium, log_in, new_page
from clinic.documents import session_document, store_sessions
from clinic.service_rig import RunningClinic, clinic_settings, running_clinic
from clinic.test_dashboard import small_targets
from mqtt.brokers import Broker
from mqtt.harness import protocol
from treadctl.clinic.database import open_database
from treadctl.clinic.steps import monday, propose_week
from treadctl.clinic.views import ProgressionStep
from treadctl.programs.library import builtin_programs

PROGRAM = "alghadir2019-knee-oa"
PROGRAMS = {name: entry.program for name, entry in builtin_programs().items()}


@contextlib.asynccontextmanager
async def clinic_on(broker: Broker, tmp_path: Path) -> AsyncIterator[tuple[RunningClinic, str]]:
    url = f"sqlite:///{tmp_path}/clinic.db"
    settings = clinic_settings(broker, url, f"pages-{secrets.token_hex(3)}")
    async with running_clinic(settings) as clinic:
        yield clinic, url


def propose(url: str, prescription: int, week: date) -> ProgressionStep:
    """The service's weekly proposal for `week`, made in the database as it makes it."""
    database = open_database(url)
    try:
        with database.session() as db:
            return propose_week(db, prescription, week, PROGRAMS, now=datetime.now(UTC))
    finally:
        database.close()


async def api(clinic: RunningClinic, path: str) -> Any:
    status, body = await clinic.http.call("GET", path)
    assert status == 200, (path, body)
    return body


def error_for(page: Page, field: str) -> Locator:
    return page.locator(f'[data-error-for="{field}"]')


async def test_add_a_person_and_approve_a_proposal(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with clinic_on(broker, tmp_path) as (clinic, url), new_page(chromium) as page:
        await log_in(page, clinic.http.base + "/people")
        await page.get_by_label("Pseudonymous id").fill("p-0100")
        speed = page.get_by_label("Top speed walking backward (km/h)")
        await speed.fill("99")
        await page.get_by_role("button", name="Add the person").click()
        problem = error_for(page, "limits.max_speed_backward_kmh")
        await expect(problem).to_contain_text("limits.max_speed_backward_kmh: ")
        await expect(problem).to_contain_text("less than or equal")
        await expect(speed).to_have_attribute("aria-invalid", "true")
        assert page.url.endswith("/people")
        await expect(page.get_by_label("Pseudonymous id")).to_have_value("p-0100")  # kept
        assert (await clinic.http.call("GET", "/api/people/p-0100"))[0] == 404

        await speed.fill("1.5")
        await page.get_by_role("button", name="Add the person").click()
        await expect(page).to_have_url(clinic.http.base + "/people/p-0100")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Person p-0100")
        stored = await api(clinic, "/api/people/p-0100")
        assert stored["limits"] == {"max_speed_backward_kmh": 1.5}

        # A prescription from last Monday, from the page: a bad count refused at its field.
        started = monday(datetime.now(UTC).date()) - timedelta(weeks=1)
        await page.get_by_text("Add a prescription").click()
        await page.locator("#add-rx-program").select_option(PROGRAM)
        await page.locator("#add-rx-parameters").fill("comfortable_backward_kmh = 1.0")
        await page.get_by_label("Sessions a week").fill("20")
        await page.get_by_label("Start date").fill(started.isoformat())
        await page.get_by_label("Propose a weekly progression").check()
        await page.get_by_role("button", name="Add the prescription").click()
        await expect(error_for(page, "sessions_per_week")).to_contain_text(
            "sessions_per_week: Input should be less than or equal to 14"
        )
        assert await api(clinic, "/api/prescriptions?person=p-0100") == []
        await page.get_by_label("Sessions a week").fill("2")
        await page.get_by_role("button", name="Add the prescription").click()
        await expect(page.locator("tr.active")).to_contain_text(PROGRAM)
        (made,) = await api(clinic, "/api/prescriptions?person=p-0100")
        assert made["start_date"] == started.isoformat()
        assert made["parameters"] == {"comfortable_backward_kmh": 1.0}

        # A proposal for last week (none walked: a hold), approved from the page.
        step = await asyncio.to_thread(propose, url, made["id"], started)
        await page.reload()
        await page.get_by_role("button", name=f"Approve step {step.id}").click()
        await expect(page.get_by_text("None awaiting a decision.")).to_be_visible()
        await expect(page.get_by_text("approved by admin")).to_be_visible()  # the login
        await page.evaluate("document.querySelectorAll('details').forEach((d) => d.open = true)")
        assert await small_targets(page) == []
        await page.set_viewport_size({"width": 800, "height": 1280})  # a tablet in portrait
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        (decided,) = await api(clinic, "/api/steps?person=p-0100")
        assert (decided["status"], decided["decided_by"]) == ("approved", "admin")


async def test_a_session_page_chart_and_annotation_form(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with clinic_on(broker, tmp_path) as (clinic, url), new_page(chromium) as page:
        status, _ = await clinic.http.call("POST", "/api/people", {"id": "mrs-k"})
        assert status == 201
        started = datetime.now(UTC) - timedelta(hours=2)
        document = session_document("s-1", started=started, ended_how="stopped")
        await asyncio.to_thread(store_sessions, url, document)
        await log_in(page, clinic.http.base + "/sessions/s-1")
        chart = page.get_by_role("img", name="Speed (belt and target), incline and heart rate")
        await expect(chart).to_be_visible()
        loaded = "img => img.complete && img.naturalWidth > 500"
        await page.wait_for_function(f"({loaded})(document.querySelector('img.chart'))")
        await expect(page.get_by_text("Not annotated yet.")).to_be_visible()

        await page.get_by_label("Pain before (0–10)").fill("2")
        await page.get_by_label("Pain after (0–10)").fill("3")
        await page.get_by_label("Exertion, Borg (6–20)").fill("25")
        await page.get_by_role("button", name="Save the annotation").click()
        await expect(error_for(page, "exertion_borg")).to_contain_text(
            "exertion_borg: Input should be less than or equal to 20"
        )
        await expect(error_for(page, "pain_after")).to_have_text("")
        await expect(page.get_by_text("Not annotated yet.")).to_be_visible()
        assert (await api(clinic, "/api/sessions/s-1"))["annotation"] is None

        await page.get_by_label("Exertion, Borg (6–20)").fill("13")
        await page.get_by_label("Supervised by").fill("therapist-a")
        await page.get_by_label("Category").select_option("dizziness")
        await page.get_by_label("What happened").fill("light-headed at minute 1")
        await page.get_by_label("Notes", exact=True).fill("walked well")
        await page.get_by_role("button", name="Save the annotation").click()
        await expect(page.get_by_text("dizziness: light-headed at minute 1")).to_be_visible()
        note = (await api(clinic, "/api/sessions/s-1"))["annotation"]
        assert note == {
            "pain_before": 2,
            "pain_after": 3,
            "exertion_borg": 13,
            "supervised_by": "therapist-a",
            "notes": "walked well",
            "adverse_events": [{"category": "dizziness", "text": "light-headed at minute 1"}],
        }


class FakeTreadmill:
    """A daemon's part on the broker: availability, state, answers to commands, a record."""

    def __init__(self, client: aiomqtt.Client, prefix: str, device: str) -> None:
        self.client, self.base = client, f"{prefix}/{device}"
        self.commands: list[tuple[str, dict[str, Any]]] = []

    async def serve(self) -> None:
        async for message in self.client.messages:
            if not message.topic.matches(f"{self.base}/cmd/+"):
                continue  # the embedded broker (amqtt) has handed this client its own `online`
            assert isinstance(message.payload, bytes)
            body = json.loads(message.payload)
            name = message.topic.value.rsplit("/", 1)[-1]
            self.commands.append((name, body))
            answer = {"id": body.get("id"), "ok": True, "message": "started"}
            await self.client.publish(f"{self.base}/response/{name}", json.dumps(answer), qos=1)

    async def state(self, mode: str, **more: Any) -> None:
        state = {"mode": mode, "actual": {"speed_kmh": 0.0}, **more}
        await self.client.publish(f"{self.base}/state", json.dumps(state), qos=1)

    async def record(self, document: dict[str, Any]) -> None:
        await self.client.publish(f"{self.base}/record", json.dumps(document), qos=1)


@contextlib.asynccontextmanager
async def fake_treadmill(broker: Broker, prefix: str, device: str) -> AsyncIterator[FakeTreadmill]:
    client = aiomqtt.Client(broker.host, broker.port, protocol=protocol(broker))
    async with client:
        fake = FakeTreadmill(client, prefix, device)
        await client.subscribe(f"{prefix}/{device}/cmd/+", qos=1)
        task = asyncio.create_task(fake.serve(), name="test.fake-treadmill")
        try:
            await client.publish(f"{prefix}/{device}/availability", b"online", qos=1)
            await fake.state("idle")
            yield fake
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def test_the_start_waits_for_the_check_and_the_session_is_offered_for_annotation(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with (
        clinic_on(broker, tmp_path) as (clinic, _url),
        fake_treadmill(broker, clinic.prefix, "tm-9") as treadmill,
        new_page(chromium) as page,
    ):
        assert (await clinic.http.call("POST", "/api/people", {"id": "mrs-k"}))[0] == 201
        await log_in(page, clinic.http.base + "/treadmills/tm-9")
        await expect(page.locator("article.tile .reading-mode dd")).to_have_text("idle")
        start = page.get_by_role("button", name="Start", exact=True)
        await page.get_by_label("Person id").fill("mrs-k")
        await page.get_by_label("Person id").press("Tab")
        await expect(page.locator("#start-plan")).to_have_text(
            "No active prescription for mrs-k: choose a program."
        )
        await page.locator("#start-program").select_option(PROGRAM)
        await page.locator(f"#start-{PROGRAM}-comfortable_backward_kmh").fill("1.1")
        await expect(start).to_be_disabled()
        await page.get_by_label("Pain now (0–10)").fill("2")
        await page.get_by_label("Safety clip attached to the person").check()
        await expect(start).to_be_disabled()  # one box of two
        await page.get_by_label("Supervisor present at the treadmill").check()
        await expect(start).to_be_enabled()

        async with page.expect_request("**/api/treadmills/tm-9/start") as sent:
            await start.click()
        body = (await sent.value).post_data_json
        assert isinstance(body, dict)
        assert body["check"] == {
            "pain_before": 2,
            "clip_attached": True,
            "supervisor_present": True,
        }
        assert (body["person"], body["program"]) == ("mrs-k", PROGRAM)
        assert body["parameters"] == {"comfortable_backward_kmh": 1.1}
        await expect(page.locator("#start-status")).to_have_text(f"started {PROGRAM} for mrs-k")
        ((name, command),) = treadmill.commands
        assert (name, command["person"], command["program"]) == ("start", "mrs-k", PROGRAM)

        # The daemon holds the start until it is confirmed at the treadmill: the tile says so.
        held = {"program": PROGRAM, "confirm": "button", "expires_s": 30}
        await treadmill.state("idle", person="mrs-k", awaiting=held)
        awaiting = page.locator("article.tile .awaiting")
        await expect(awaiting).to_have_text(
            f"waiting for the start of {PROGRAM} to be confirmed at the treadmill "
            "(GO on the button box), 30 s left"
        )
        # The session runs, ends, and its record reaches the clinic: the tile links to it.
        await treadmill.state("running", person="mrs-k", program=PROGRAM)
        await expect(page.locator("article.tile .reading-mode dd")).to_have_text("running")
        await expect(awaiting).to_be_hidden()
        await treadmill.state("idle")
        started = datetime.now(UTC) - timedelta(minutes=3)
        await treadmill.record(session_document("s-9", device="tm-9", started=started))
        link = page.get_by_role("link", name="Annotate the session that just ended")
        await expect(link).to_have_attribute("href", "/sessions/s-9#annotation")
        await link.click()
        await expect(page.get_by_role("heading", name="Annotate the session")).to_be_visible()
