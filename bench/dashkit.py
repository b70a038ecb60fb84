"""Shared pieces of the dashboard's benchmarks: the clinic service (`treadctl clinic`) as a real
subprocess on SQLite, an account and the login step, and Debian's Chromium driven over CDP by
Playwright's sync API.

The browser part is a minimal copy of tests/clinic/browser.py (a benchmark cannot import tests/):
the same closed-network flags, the DevTools port read from the profile, the helpers in a process
group of their own, killed with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchkit import cpu_s, python_env, rss_mb, stop_process, treadctl_exe
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from treadctl import logs
from treadctl.sim.brokers import HOST, free_port

CHROMIUM = Path("/usr/bin/chromium")
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
START_S = 30.0  # a cold Chromium, or the clinic service, on a loaded two-core machine
WAIT_MS = 10_000
TABLET: ViewportSize = {"width": 1180, "height": 820}


# --- the clinic service ------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    username: str = "bench"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class Clinic:
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]
    account: Account

    def cpu_s(self) -> float:
        return cpu_s(self.proc.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)


def add_account(database_url: str, account: Account) -> None:
    """The admin account the browser logs in with, made before the service starts."""
    from treadctl.clinic import accounts  # noqa: PLC0415 - the clinic extra
    from treadctl.clinic.database import open_database  # noqa: PLC0415

    logs.configure("WARNING")  # not the migration's info line
    database = open_database(database_url)
    try:
        with database.session() as session:
            accounts.add_account(
                session, account.username, account.password, admin=True, now=datetime.now(UTC)
            )
    finally:
        database.close()


def _serving(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/login", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any answer: it serves
    except OSError:
        return False


@contextlib.contextmanager
def clinic_service(workdir: Path, broker_port: int, prefix: str = "treadctl") -> Iterator[Clinic]:
    """`treadctl clinic` on a SQLite file in `workdir`, its web API on a free port."""
    database = f"sqlite:///{workdir / 'clinic.db'}"
    account = Account()
    add_account(database, account)
    port = free_port()
    config = workdir / "clinic.toml"
    config.write_text(
        'log_level = "WARNING"\n'
        f'[mqtt]\nhost = "{HOST}"\nport = {broker_port}\nprotocol = "5"\nprefix = "{prefix}"\n'
        f'[clinic]\ndatabase = "{database}"\nhost = "{HOST}"\nport = {port}\n'
    )
    env = python_env() | {"TREADCTL_LOG_LEVEL": "WARNING"}
    env.pop("NOTIFY_SOCKET", None)
    with (workdir / "clinic.log").open("ab") as log:
        proc = subprocess.Popen(
            [treadctl_exe(), "clinic", "--config", str(config)], env=env, cwd=workdir, stderr=log
        )
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + START_S
        while not _serving(base):
            if proc.poll() is not None:
                raise RuntimeError(f"treadctl clinic exited with {proc.returncode}: see its log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"treadctl clinic not serving within {START_S} s")
            time.sleep(0.05)
        yield Clinic(base, proc, account)
    finally:
        stop_process(proc, 15)


def login(page: Page, clinic: Clinic) -> None:
    """The login step: `/login`, the account's name and password, submit, wait for `/`."""
    page.goto(clinic.base + "/login")
    page.fill("input[name=username]", clinic.account.username)
    page.fill("input[name=password]", clinic.account.password)
    page.locator("form [type=submit]").first.click()
    try:
        page.wait_for_url(clinic.base + "/", timeout=WAIT_MS)
    except PlaywrightError as exc:
        said = page.locator("body").inner_text(timeout=1000)[:300]
        raise RuntimeError(f"login refused: still on {page.url}: {said}") from exc


# --- the browser -------------------------------------------------------------------------------


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes its DevTools port (chosen by the kernel) to DevToolsActivePort."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited at start with {process.returncode}")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)
    raise TimeoutError(f"chromium gave no DevTools port within {START_S} s")


@dataclass
class Chromium:
    process: subprocess.Popen[bytes]
    playwright: Playwright
    browser: Browser

    def cpu_s(self) -> float:
        """The browser's and its helpers' CPU (its process group: renderer, GPU, utility)."""
        total = 0.0
        for pid in _group(self.process.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_s(pid)
        return total

    def new_page(self, *, touch: bool = False) -> Page:
        context = self.browser.new_context(viewport=TABLET, has_touch=touch)
        context.set_default_timeout(WAIT_MS)
        return context.new_page()


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                    pids.append(int(entry.name))
    return pids


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Chromium]:
    """Debian's Chromium on an empty profile, Playwright connected over CDP."""
    if not CHROMIUM.exists():
        sys.exit("bench: needs Debian's chromium (apt-get install chromium)")
    process = subprocess.Popen(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its renderers and helpers in a process group of their own
    )
    try:
        port = _devtools_port(profile, process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(
                f"http://127.0.0.1:{port}", timeout=20_000
            )
            try:
                yield Chromium(process, playwright, browser)
            finally:
                browser.close()  # over CDP: disconnects
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # any helper that outlived the browser
