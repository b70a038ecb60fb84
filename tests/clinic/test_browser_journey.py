"""A therapist's journey through the dashboard in a real browser (Debian's Chromium,
tests/clinic/browser.py), against real processes: two simulated Woodway treadmills on ptys, their
daemons (`treadctl run`), a real broker and the clinic service (`treadctl clinic`, SQLite).

Log in through the login page; both treadmills live on the overview; a person and their
prescription added through the people pages' forms; on treadmill A's page the person, the
pre-session check and Start; the prescribed session runs to its end, the page links to its
annotation form, the annotation is saved (the service had filled in who supervised and the pain
before from the start's check); the person's report. Then on treadmill B's page a session, E-STOP
tapped: the stop byte on B's line and none on A's, the latched tile, Reset once the belt is still.

The simulated treadmills run in the test's process (the same `SimulatedTreadmill` that
`treadctl sim` runs, on a pty with a link the daemon opens) so that the test reads the bytes each
one received from its wire log, as tests/clinic/test_dashboard.py does.

With TREADCTL_SCREENSHOTS=DIR, A's page during the session and the overview are also written to
DIR (`TREADCTL_SCREENSHOTS=docs/images uv run pytest tests/clinic/test_browser_journey.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from playwright.async_api import Page, expect
from waiting import until

from clinic.browser import Chromium, log_in, new_page
from clinic.journey import (
    PROGRAM,
    clinic_config,
    clinic_process,
    ended,
    first_admin,
    processes_naming,
    running,
    sessions_of,
    treadmill,
    write_program,
)
from clinic.service_rig import ADMIN
from clinic.test_dashboard import changing_speed, reading, screenshot, tile
from clinic.test_end_to_end import poll
from mqtt.brokers import Broker
from mqtt.processes import start_daemon
from treadctl.drivers.trackmaster_codec import Op, Request
from treadctl.sim.brokers import free_port
from treadctl.sim.pty_server import SimulatedTreadmill

pytestmark = pytest.mark.journey  # left out of CI's embedded-broker pass (docs/testing.md)

A, B = "tm-a", "tm-b"
PERSON = "p-0007"
LIMIT_KMH = 1.0  # her top backward speed
SPEED_KMH = 0.9  # her comfortable backward speed, saved on her record
PAIN_BEFORE = 3  # the pre-session check's score
UP_MS = 30_000  # the daemons' first state, on a loaded machine
SESSION_MS = 60_000  # the program's 16 s, its ramps and a loaded machine


def stops_since(sim: SimulatedTreadmill, t: float) -> int:
    """Stop requests the treadmill read since `t` (monotonic), from its wire log."""
    return sum(
        1
        for r in sim.wire.requests
        if r.at >= t and isinstance(r.request, Request) and r.request.op == Op.STOP
    )


async def press_start(page: Page) -> str:
    """Start pressed once: what the page says came of it."""
    status = page.locator("#start-status")
    await page.get_by_role("button", name="Start", exact=True).click()
    await expect(status).to_have_text(re.compile("^(started|not started)"))
    said = await status.inner_text()
    # the only refusal expected: the daemon's start interlock, 3 s from its power-up
    assert said.startswith("started") or "starts are refused for 3 s" in said, said
    return said


async def start_a_session(page: Page) -> None:
    """On a treadmill's page: the person, their prescription shown, the pre-session check,
    Start (pressed again while the daemon's power-up interlock holds, as its message says)."""
    person = page.get_by_label("Person id")
    await person.fill(PERSON)
    await person.press("Tab")
    await expect(page.locator("#start-plan")).to_have_text(
        f"Active prescription: {PROGRAM} (comfortable_backward_kmh = {SPEED_KMH}), "
        "3 a week for 4 weeks."
    )
    start = page.get_by_role("button", name="Start", exact=True)
    await expect(start).to_be_disabled()
    await page.get_by_label("Pain now (0–10)").fill(str(PAIN_BEFORE))
    await page.get_by_label("Safety clip attached to the person").check()
    await page.get_by_label("Supervisor present at the treadmill").check()
    await expect(start).to_be_enabled()
    await poll(
        lambda: press_start(page), lambda said: said.startswith("started"), 30, "a start taken"
    )
    await expect(page.locator("#start-status")).to_have_text(f"started {PROGRAM} for {PERSON}")


async def add_the_person_and_her_prescription(page: Page) -> None:
    """Through the people pages' forms, as a therapist would."""
    await page.get_by_role("link", name="People").click()
    await page.get_by_label("Pseudonymous id").fill(PERSON)
    await page.get_by_label("Top speed walking backward (km/h)").fill(str(LIMIT_KMH))
    await page.get_by_label("Saved program parameters").fill(
        f"comfortable_backward_kmh = {SPEED_KMH}"
    )
    await page.get_by_role("button", name="Add the person").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Person {PERSON}")

    await page.locator("summary", has_text="Add a prescription").click()
    await page.locator("#add-rx-program").select_option(PROGRAM)
    parameters = page.locator("#add-rx-parameters")  # her saved parameters, filled in
    await expect(parameters).to_have_value(f"comfortable_backward_kmh = {SPEED_KMH}")
    await page.get_by_label("Sessions a week").fill("3")
    await page.get_by_label("Weeks", exact=True).fill("4")
    await page.get_by_role("button", name="Add the prescription").click()
    active = page.locator("tr.active")
    await expect(active).to_contain_text(PROGRAM)
    await expect(active).to_contain_text("3 a week for 4 weeks")


@pytest.mark.timeout(300)  # ~45 s here; generous for a loaded 2-core machine
async def test_a_therapists_journey_from_login_to_estop(
    own_broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    t0 = time.monotonic()
    programs = tmp_path / "programs"
    write_program(programs)
    database = f"sqlite:///{tmp_path}/clinic.db"
    a, b = (
        treadmill(tmp_path, own_broker, device, programs=programs, clinic_database=database)
        for device in (A, B)
    )
    port = free_port()
    config = clinic_config(
        tmp_path / "clinic.toml", own_broker, database=database, port=port, programs=programs
    )
    await asyncio.to_thread(first_admin, database)
    async with contextlib.AsyncExitStack() as stack:
        clinic = await stack.enter_async_context(
            clinic_process(config, port, tmp_path / "clinic.log")
        )
        sim_a = await stack.enter_async_context(SimulatedTreadmill("woodway", link=a.link))
        sim_b = await stack.enter_async_context(SimulatedTreadmill("woodway", link=b.link))
        daemon_a = await stack.enter_async_context(running(await start_daemon(a.config)))
        daemon_b = await stack.enter_async_context(running(await start_daemon(b.config)))
        await clinic.ready()
        http = await clinic.http.login()  # the test's own look at the API
        base = clinic.http.base
        page = await stack.enter_async_context(new_page(chromium))

        # 1. the login page, then the overview: both treadmills live
        await log_in(page, base + "/")
        await expect(page.locator(".account .who")).to_have_text(ADMIN)
        for device in (A, B):
            state = tile(page, device).locator(".tile-state")
            await expect(state).to_have_text("live · idle", timeout=UP_MS)
        up = time.monotonic() - t0

        # 2. the person and her prescription, through the pages' forms
        await add_the_person_and_her_prescription(page)
        status, prescriptions = await http.call("GET", f"/api/prescriptions?person={PERSON}")
        assert status == 200, prescriptions
        (rx,) = [p for p in prescriptions if p["ended"] is None]
        assert rx["program"] == PROGRAM, rx
        assert rx["parameters"] == {"comfortable_backward_kmh": SPEED_KMH}, rx

        # 3. treadmill A's page, from its tile: the check, Start; the session runs to its end
        await page.get_by_role("link", name="Overview").click()
        await tile(page, A).get_by_role("link", name=A).click()
        await expect(page).to_have_url(f"{base}/treadmills/{A}")
        walk_from = time.monotonic()
        await start_a_session(page)
        await expect(reading(page, A, "person")).to_have_text(PERSON)
        await expect(reading(page, A, "program")).to_have_text(PROGRAM)
        await expect(reading(page, A, "direction")).to_have_text("backward / reverse")
        await changing_speed(page, A)
        # her prescribed speed, as the Woodway's wire carries it (0.5 mph)
        await expect(reading(page, A, "target")).to_have_text("0.8 km/h")
        await until(lambda: sim_a.belt.speed_kmh < 0, timeout=10, what="A's belt in reverse")
        assert sim_b.belt.still
        await screenshot(page, tmp_path, "dashboard-journey-running.png", full_page=False)

        # the overview meanwhile, in a second tab of the same login
        overview = await page.context.new_page()
        await overview.goto(base + "/")
        await expect(reading(overview, A, "mode")).to_have_text("running")
        await expect(reading(overview, A, "person")).to_have_text(PERSON)
        await expect(tile(overview, B).locator(".tile-state")).to_have_text("live · idle")
        await screenshot(overview, tmp_path, "dashboard-journey-overview.png")
        await overview.close()

        link = page.get_by_role("link", name="Annotate the session that just ended")
        await expect(link).to_be_visible(timeout=SESSION_MS)
        await expect(reading(page, A, "mode")).to_have_text("idle")
        walked = time.monotonic() - walk_from
        (stored,) = await sessions_of(a.store)  # the daemon's own record of it
        assert (stored["person"], stored["ended_how"]) == (PERSON, "finished"), stored

        # 4. its annotation form, from the link: who supervised and the pain before are filled
        # in by the service from the start's command log
        await link.click()
        await expect(page.get_by_role("heading", name="Change the annotation")).to_be_visible()
        session_id = unquote(urlsplit(page.url).path.rsplit("/", 1)[-1])
        assert session_id == stored["id"], (page.url, stored)
        path = f"/api/sessions/{session_id}"
        status, session = await http.call("GET", path)
        assert status == 200, session
        assert (session["person_id"], session["device_id"]) == (PERSON, A), session
        assert session["prescription_id"] == rx["id"], session
        assert session["ended_how"] == "finished", session
        filled = session["annotation"]
        assert (filled["supervised_by"], filled["pain_before"]) == (ADMIN, PAIN_BEFORE), filled
        await expect(page.get_by_label("Pain before (0–10)")).to_have_value(str(PAIN_BEFORE))
        await expect(page.get_by_label("Supervised by")).to_have_value(ADMIN)
        await page.get_by_label("Pain after (0–10)").fill("2")
        await page.get_by_label("Exertion, Borg (6–20)").fill("12")
        await page.get_by_role("button", name="Save the annotation").click()
        shown = page.locator("#annotation dl div", has_text="Pain after").locator("dd")
        await expect(shown).to_have_text("2")
        status, session = await http.call("GET", path)
        assert status == 200, session
        note = session["annotation"]
        assert {k: note[k] for k in ("supervised_by", "pain_before")} == {
            "supervised_by": ADMIN,
            "pain_before": PAIN_BEFORE,
        }, note
        assert (note["pain_after"], note["exertion_borg"]) == (2, 12), note

        # 5. her page, and her report from it
        await page.get_by_role("link", name="People").click()
        await page.get_by_role("link", name=PERSON, exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Person {PERSON}")
        await page.get_by_role("link", name="Report", exact=True).click()
        await expect(page).to_have_url(f"{base}/api/people/{PERSON}/report")
        report = page.locator("body")
        await expect(report).to_contain_text(PERSON)
        await expect(report).to_contain_text("1 session done of 3 due so far")

        # 6. treadmill B: a session, then E-STOP in the page
        await page.goto(f"{base}/treadmills/{B}")
        await expect(tile(page, B).locator(".tile-state")).to_have_text("live · idle")
        await start_a_session(page)
        await until(lambda: sim_b.belt.speed_kmh < 0, timeout=15, what="B's belt in reverse")
        await expect(reading(page, B, "mode")).to_have_text("running")
        tap = time.monotonic()
        await page.get_by_role("button", name="E-STOP", exact=True).click()
        await until(lambda: stops_since(sim_b, tap) > 0, timeout=5, what="the stop byte on B")
        stopped_in = time.monotonic() - tap
        await expect(page.locator("#estop-status")).to_have_text("stop sent")
        await expect(tile(page, B).locator(".latched")).to_be_visible()
        await expect(tile(page, B).locator(".tile-state")).to_have_text("live · estop")
        assert stops_since(sim_a, tap) == 0, sim_a.wire.ops()[-20:]

        # Reset once the belt is still: the latch clears
        reset = tile(page, B).get_by_role("button", name=f"Reset the e-stop of {B}")
        await until(lambda: sim_b.belt.still, timeout=15, what="B's belt still")
        await expect(reset).to_be_visible()
        await reset.click()
        await expect(tile(page, B).locator(".latched")).to_be_hidden()
        await expect(reset).to_be_hidden()
        await expect(tile(page, B).locator(".tile-state")).to_have_text("live · idle")
        assert sim_a.belt.still

        # every process ends cleanly
        assert await clinic.stop() == 0, clinic.tail()
        assert await ended(daemon_a) == 0
        assert await ended(daemon_b) == 0
    assert processes_naming(f"{tmp_path}/") == []
    print(
        f"\nbrowser journey: up {up:.1f} s, A's session to its end {walked:.1f} s, "
        f"E-STOP tap -> stop byte on B {1000 * stopped_in:.0f} ms, "
        f"total {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
