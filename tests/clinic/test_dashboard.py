"""The dashboard in a real browser (Debian's Chromium, tests/clinic/browser.py) against the clinic
service on a real broker, with two daemons' controllers and MQTT bridges driving simulated
treadmills on ptys: tiles live, the e-stop from the page down to the stop byte on the wire, reset,
a daemon going offline, the live stream lost and back, the start form and its refusals.

With TREADCTL_SCREENSHOTS=DIR the overview and treadmill pages' screenshots are also written to
DIR (docs/images for the documentation: `TREADCTL_SCREENSHOTS=docs/images uv run pytest
tests/clinic/test_dashboard.py`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
from playwright.async_api import Locator, Page, expect

from clinic.browser import Chromium, log_in, new_page
from clinic.service_rig import RunningClinic, clinic_settings, running_clinic
from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged, end_bridge, protocol
from treadctl.config import Settings
from treadctl.core.state import Mode
from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.brokers import free_port

A, B = "treadmill-1", "treadmill-2"
PROGRAM = "alghadir2019-knee-oa"


@dataclass
class Room:
    """Two treadmills and the clinic service on one broker, under a prefix of the test's own."""

    a: Bridged
    b: Bridged
    clinic: RunningClinic
    settings: Settings

    @property
    def base(self) -> str:
        return self.clinic.http.base


@contextlib.asynccontextmanager
async def room(broker: Broker, tmp_path: Path, *, port: int = 0) -> AsyncIterator[Room]:
    prefix = f"dash-{secrets.token_hex(3)}"
    settings = clinic_settings(broker, f"sqlite:///{tmp_path}/clinic.db", prefix)
    settings = settings.model_copy(
        update={"clinic": settings.clinic.model_copy(update={"port": port})}
    )
    mqtt = {"prefix": prefix}
    async with (
        bridged(broker, mqtt=mqtt, device={"id": A}) as a,
        bridged(broker, mqtt=mqtt, device={"id": B}) as b,
        running_clinic(settings) as clinic,
    ):
        yield Room(a, b, clinic, settings)


def tile(page: Page, device: str) -> Locator:
    return page.locator(f'article.tile[data-device="{device}"]')


def reading(page: Page, device: str, name: str) -> Locator:
    return tile(page, device).locator(f".reading-{name} dd")


async def screenshot(page: Page, tmp_path: Path, name: str, *, full_page: bool = True) -> None:
    """Into the test's directory; also into $TREADCTL_SCREENSHOTS when set (the docs' images)."""
    path = tmp_path / name
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=path, full_page=full_page)
    assert path.read_bytes().startswith(b"\x89PNG")
    if target := os.environ.get("TREADCTL_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)


async def small_targets(page: Page) -> list[str]:
    """Visible buttons, links and inputs smaller than a 44 px touch target."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("button, a, input")]
            .filter((e) => e.offsetParent !== null && !e.classList.contains("skip"))
            .filter((e) => e.getBoundingClientRect().height < 44)
            .map((e) => e.outerHTML.slice(0, 80))"""
    )
    return found


async def changing_speed(page: Page, device: str) -> None:
    """The tile's speed moves off zero, then changes again: it is live, not a still picture."""
    speed = reading(page, device, "speed")
    await expect(speed).not_to_have_text("0.0 km/h")
    first = await speed.inner_text()
    await expect(speed).not_to_have_text(first)


async def test_overview_live_estop_to_the_wire_and_reset(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with room(broker, tmp_path) as r, new_page(chromium) as page:
        await log_in(page, r.base + "/")
        for device in (A, B):
            await expect(tile(page, device).locator(".tile-state")).to_have_text("live · idle")
        order = "tiles => tiles.map((t) => t.dataset.device)"
        assert await page.locator("article.tile").evaluate_all(order) == [A, B]
        assert await page.locator("#banner").is_hidden()

        walking = await r.a.user.request("set", {"speed_kmh": 1.5, "walk": "backward"})
        assert walking["ok"], walking
        await changing_speed(page, A)
        await expect(reading(page, A, "direction")).to_have_text("backward / reverse")
        await expect(reading(page, B, "speed")).to_have_text("0.0 km/h")
        await screenshot(page, tmp_path, "dashboard-overview.png")
        assert await small_targets(page) == []

        # One tap, no confirmation: the stop byte on A's wire, none on B's.
        stop = page.get_by_role("button", name=f"E-stop {A}")
        await stop.focus()
        t0 = time.monotonic()
        await page.keyboard.press("Enter")  # a real <button>: the keyboard presses it too
        await r.a.rig.until(lambda: Op.STOP in r.a.rig.ops_since(t0), 5, "the stop byte on A")
        await expect(tile(page, A).locator(".status")).to_have_text("stop sent")
        await expect(tile(page, A).locator(".latched")).to_be_visible()
        await expect(tile(page, A).locator(".tile-state")).to_have_text("live · estop")
        assert Op.STOP not in r.b.rig.ops_since(t0)

        # Reset only once the belt is still; it clears the latch.
        reset = tile(page, A).get_by_role("button", name=f"Reset the e-stop of {A}")
        await r.a.rig.until(lambda: r.a.rig.sim.belt.still, 10, "A's belt still")
        await expect(reset).to_be_visible()
        await reset.click()
        await r.a.rig.mode(Mode.IDLE, 5)
        await expect(tile(page, A).locator(".latched")).to_be_hidden()
        await expect(reset).to_be_hidden()
        await expect(tile(page, A).locator(".status")).to_contain_text("reset")


async def test_offline_daemon_and_lost_live_stream(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    port = free_port()
    async with room(broker, tmp_path, port=port) as r, new_page(chromium) as page:
        await log_in(page, r.base + "/")
        await expect(tile(page, B).locator(".tile-state")).to_have_text("live · idle")

        # B's daemon goes away: its last word is `offline`, and the tile says so at once.
        await end_bridge(r.b.task)
        state = tile(page, B).locator(".tile-state")
        await expect(state).to_contain_text("offline since")
        await expect(tile(page, B)).to_have_class("tile tile-dead")
        await expect(tile(page, B).locator(".badge")).to_have_text("○ offline")
        await expect(tile(page, A).locator(".tile-state")).to_have_text("live · idle")

        # The live stream is lost with the service: the banner, and no tile claims to be live.
        assert await r.clinic.stop() == 0
        banner = page.locator("#banner")
        await expect(banner).to_be_visible()
        await expect(banner).to_have_text("live updates lost — reconnecting…")
        await expect(tile(page, A).locator(".tile-state")).to_have_text(
            "not live: live updates lost"
        )
        await screenshot(page, tmp_path, "dashboard-lost.png")

        # The service is back on its port: the page reconnects by itself.
        async with running_clinic(r.settings):
            await expect(banner).to_be_hidden()
            await expect(tile(page, A).locator(".tile-state")).to_have_text("live · idle")
            await expect(tile(page, B).locator(".tile-state")).to_contain_text("offline since")


async def test_treadmill_page_start_commands_and_estop(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with room(broker, tmp_path) as r, new_page(chromium) as page:
        status, _ = await r.clinic.http.call("POST", "/api/people", {"id": "p-0042"})
        assert status == 201
        await log_in(page, f"{r.base}/treadmills/{A}")
        await expect(tile(page, A).locator(".tile-state")).to_have_text("live · idle")
        assert await page.locator("article.tile").count() == 1  # this treadmill's only
        estop = page.get_by_role("button", name="E-STOP", exact=True)
        box = await estop.bounding_box()
        assert box is not None
        assert box["y"] < 150  # the first thing on the page
        assert box["height"] >= 100  # the largest control

        # A refusal says why, and nothing is sent.
        await page.get_by_label("Person id").fill("nobody")
        await page.get_by_label("Pain now (0–10)").fill("1")  # the pre-session check
        await page.get_by_label("Safety clip attached to the person").check()
        await page.get_by_label("Supervisor present at the treadmill").check()
        await page.get_by_role("button", name="Start").click()
        status_line = page.locator("#start-status")
        await expect(status_line).to_contain_text("not started: ")
        await expect(status_line).to_contain_text("nobody")
        assert r.a.rig.controller.mode is Mode.IDLE

        await page.get_by_label("Person id").fill("p-0042")
        await page.locator("#start-program").select_option(PROGRAM)
        await page.get_by_role("button", name="Start").click()
        await expect(status_line).to_have_text(f"started {PROGRAM} for p-0042")
        await expect(reading(page, A, "person")).to_have_text("p-0042")
        await expect(reading(page, A, "program")).to_have_text(PROGRAM)
        await changing_speed(page, A)
        await screenshot(page, tmp_path, "dashboard-treadmill.png", full_page=False)

        await page.get_by_role("button", name="Pause").click()
        await expect(reading(page, A, "mode")).to_have_text("paused")
        await page.get_by_role("button", name="Resume").click()
        await expect(reading(page, A, "mode")).to_have_text("running")

        t0 = time.monotonic()
        await estop.click()
        await r.a.rig.until(lambda: Op.STOP in r.a.rig.ops_since(t0), 5, "the stop byte")
        await expect(page.locator("#estop-status")).to_have_text("stop sent")
        await expect(tile(page, A).locator(".latched")).to_be_visible()

        # A tablet in portrait: nothing wider than the screen, the e-stop still on top.
        await page.set_viewport_size({"width": 800, "height": 1280})
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        box = await estop.bounding_box()
        assert box is not None
        assert box["y"] < 150
        assert box["width"] > 600
        await screenshot(page, tmp_path, "dashboard-portrait.png", full_page=False)

        await page.get_by_role("link", name="People").click()
        await expect(page.get_by_role("rowheader", name="p-0042")).to_be_visible()
        status, body = await r.clinic.http.call("GET", "/treadmills/%3Cscript%3E")
        assert status == 404
        assert b"&lt;script&gt;" in body
        assert b"<script>" not in body


async def test_estop_without_the_broker_says_to_use_the_treadmills_own_stop(
    own_broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    async with room(own_broker, tmp_path) as r, new_page(chromium) as page:
        await log_in(page, r.base + "/")
        await expect(tile(page, A).locator(".tile-state")).to_have_text("live · idle")
        own_broker.kill()
        await page.get_by_role("button", name=f"E-stop {A}").click()
        status = tile(page, A).locator(".status")
        await expect(status).to_contain_text("NOT")
        await expect(status).to_contain_text("use the treadmill's own stop")


async def test_a_silent_daemon_is_not_shown_live(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    """A daemon said online that sends nothing more: its tile says for how long, greyed."""
    prefix = f"dash-{secrets.token_hex(3)}"
    settings = clinic_settings(broker, f"sqlite:///{tmp_path}/clinic.db", prefix)
    client = aiomqtt.Client(broker.host, broker.port, protocol=protocol(broker))
    async with running_clinic(settings) as clinic, client, new_page(chromium) as page:
        await log_in(page, clinic.http.base + "/")
        telemetry = b'{"speed_kmh": -1.2, "belt": "reverse", "incline_pct": 0.0}'
        await client.publish(f"{prefix}/quiet/availability", b"online", qos=1)
        await client.publish(f"{prefix}/quiet/telemetry", telemetry, qos=1)
        state = tile(page, "quiet").locator(".tile-state")
        await expect(state).to_have_text(re.compile("^live"))
        await expect(reading(page, "quiet", "speed")).to_have_text("1.2 km/h")
        await expect(state).to_have_text(re.compile(r"^no data for \d+ s$"))
        await expect(tile(page, "quiet")).to_have_class("tile tile-dead")
        await client.publish(f"{prefix}/quiet/telemetry", telemetry, qos=1)
        await expect(state).to_have_text(re.compile("^live"))
        await expect(tile(page, "quiet")).to_have_class("tile")
