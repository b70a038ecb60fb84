"""Debian's Chromium for the dashboard's tests, driven by Playwright (browser downloads are not
reachable here: the system browser, never Playwright's own).

One browser for the whole test session, a new context (fresh cookies, storage, cache) per test.
pytest-asyncio gives each test its own event loop and Playwright's objects belong to the loop that
made them, so the session's browser is a plain Chromium process with a DevTools port, and each
test connects Playwright to it over CDP in its own loop (about 0.3 s) instead of launching one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, ViewportSize, async_playwright, expect

from clinic.service_rig import ADMIN, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = "needs Debian's chromium (apt install chromium; CI installs it)"
# The flags the machine's notes give for a closed network: without the background-networking
# ones Chromium keeps trying Google's hosts, refused many at a time.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
WAIT_MS = 10_000  # any wait on the page (Playwright's default is 5 s; CI's machine is loaded)
expect.set_options(timeout=WAIT_MS)
START_S = 30.0  # a cold Chromium on a loaded 2-core machine
TABLET: ViewportSize = {"width": 1180, "height": 820}  # a 10-11" tablet in landscape, CSS pixels


@dataclass(frozen=True)
class Chromium:
    endpoint: str  # http://127.0.0.1:PORT, for connect_over_cdp
    process: subprocess.Popen[bytes]


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes its DevTools port (chosen by the kernel) to DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chromium exited at start with {process.returncode}")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        # a polled file has no event to wait on; bounded by the deadline above
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)
    raise AssertionError(f"chromium gave no DevTools port within {START_S} s")


@contextlib.contextmanager
def chromium_process(profile: Path) -> Iterator[Chromium]:
    """Chromium on a new, empty profile directory (pytest's temporary one: pytest removes it,
    after the browser's helper processes are gone)."""
    if not CHROMIUM.exists():
        pytest.skip(NEEDS_CHROMIUM)
    process = subprocess.Popen(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its renderers and helpers in a process group of its own
    )
    try:
        port = _devtools_port(profile, process)
        yield Chromium(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # any helper that outlived the browser


@contextlib.asynccontextmanager
async def new_page(chromium: Chromium, viewport: ViewportSize | None = None) -> AsyncIterator[Page]:
    """A page in a fresh context of the session's browser; the context is closed afterwards."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(chromium.endpoint, timeout=20_000)
        try:
            context = await browser.new_context(viewport=viewport or TABLET)
            context.set_default_timeout(WAIT_MS)
            try:
                yield await context.new_page()
            finally:
                await context.close()
        finally:
            await browser.close()  # over CDP: disconnects, the browser runs on


async def log_in(page: Page, url: str, username: str = ADMIN, password: str = PASSWORD) -> None:
    """Open `url` as a therapist would: the service sends a new browser to its login page,
    which comes back to `url` once the form is sent."""
    await page.goto(url)
    if urlsplit(page.url).path == "/login":
        await page.get_by_label("User name").fill(username)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(url)
