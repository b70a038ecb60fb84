"""E-stop from the dashboard: a tap on the treadmill page's E-STOP button → the stop byte read by
the treadmill, against the MQTT e-stop (publish `…/cmd/estop` → the stop byte) on the same
daemon and broker, interleaved trial by trial.

Run: uv run python bench/dashboard_estop.py [--trials 50] [--input touch|mouse] [--json PATH]

Real processes: mosquitto on a free port (`set_tcp_nodelay true`, as bench/estop_mqtt.py), a
simulated Woodway on a pty served by a thread of this process (it stamps the stop byte as the
kernel hands it over), `treadctl run` driving it at 10 Hz telemetry, the clinic service
(`treadctl clinic`, SQLite in a temporary directory) and Debian's Chromium on
`/treadmills/bench`, driven over CDP by Playwright.

Each trial: a manual backward session (`cmd/set` over MQTT), the belt moving; then the e-stop,
by one of the two paths in random order; the belt still, `reset`, and the next session once the
daemon's 3 s interlock has passed. Each trial is one e-stop, so a run of N trials takes about
2 × N × 4 s.

- page: the time is taken in Python just before Playwright sends the tap (`touchscreen.tap` at
  the button's centre, found once: the button is fixed at the top of the page; `--input mouse`:
  `mouse.click` there), and ends at the stop byte. So it includes Playwright's CDP round trips
  and Chromium turning the touch into a click. A capture listener added by this benchmark (the
  page is not edited) stamps the click event as the page's own handler receives it, which
  splits the figure into tap → click event in the page, and click event → stop byte (the
  page's fetch, the service, the broker, the daemon).
- MQTT: this process's paho-mqtt client publishes `cmd/estop` (QoS 1); from just before the
  publish to the stop byte (what bench/estop_mqtt.py measures for the daemon).
"""

from __future__ import annotations

import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    make_parser,
    mosquitto,
    ratio,
    ready,
    running,
    start_daemon,
    still_and_reset,
    stop_process,
    summary_ms,
    table,
    workdir,
    write_json,
)
from dashkit import WAIT_MS, Chromium, Clinic, chromium, clinic_service, login
from playwright.sync_api import Page, expect

DEVICE = "bench"
# Stamps every click as the page's own handler (on document, bubbling) receives it; wall clock.
CLICK_STAMP = """
window.__benchClicks = [];
document.addEventListener("click", () => {
  window.__benchClicks.push(performance.timeOrigin + performance.now());
}, true);
"""
KEYS = ["p50_ms", "p95_ms", "p99_ms", "max_ms"]


class PageTrials:
    """The treadmill's page, logged in, the tile live; taps its E-STOP."""

    def __init__(self, browser: Chromium, clinic: Clinic, touch: bool) -> None:
        self.touch = touch
        self.page: Page = browser.new_page(touch=touch)
        self.page.add_init_script(CLICK_STAMP)
        login(self.page, clinic)
        self.page.goto(f"{clinic.base}/treadmills/{DEVICE}")
        state = self.page.locator(f'article.tile[data-device="{DEVICE}"] .tile-state')
        expect(state).to_have_text(re.compile("^live"), timeout=30_000)
        box = self.page.get_by_role("button", name="E-STOP", exact=True).bounding_box()
        if box is None:
            raise RuntimeError("the E-STOP button is not on the page")
        self.x, self.y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.status = self.page.locator("#estop-status")

    def trial(self, sim: ThreadedTreadmill) -> tuple[float, float]:
        """(tap → stop byte, click event in the page → stop byte), in seconds."""
        self.page.evaluate("document.getElementById('estop-status').textContent = ''")
        clicks = int(self.page.evaluate("window.__benchClicks.length"))
        before = sim.stop_count()
        t0 = time.monotonic()
        if self.touch:
            self.page.touchscreen.tap(self.x, self.y)
        else:
            self.page.mouse.click(self.x, self.y)
        stop = sim.wait_stop(before)
        wall_to_mono = time.time() - time.monotonic()
        stamps: list[float] = self.page.evaluate("window.__benchClicks")
        if len(stamps) != clicks + 1:
            raise RuntimeError(f"the tap gave {len(stamps) - clicks} click events, not 1")
        clicked = stamps[-1] / 1000 - wall_to_mono
        expect(self.status).to_have_text("stop sent", timeout=WAIT_MS)
        return stop - t0, stop - clicked


def mqtt_trial(user: User, sim: ThreadedTreadmill) -> float:
    before = sim.stop_count()
    t0 = user.publish(user.topic(DEVICE, "estop"))
    return sim.wait_stop(before) - t0


def measure(trials: int, touch: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"page": [], "page_from_click": [], "mqtt": []}
    with workdir() as wd, mosquitto(wd) as port:
        sim = ThreadedTreadmill()
        daemon = start_daemon(DaemonSpec(DEVICE, port, sim.path, wd, rate_hz=10))
        user = User(port)
        try:
            ready(user, DEVICE)
            with clinic_service(wd, port) as clinic, chromium(wd / "chromium") as browser:
                page = PageTrials(browser, clinic, touch)
                for i in range(trials):
                    for path in random.sample(["page", "mqtt"], 2):
                        running(user, DEVICE, sim)
                        time.sleep(random.uniform(0.1, 0.5))
                        if path == "page":
                            tap, click = page.trial(sim)
                            out["page"].append(tap)
                            out["page_from_click"].append(click)
                        else:
                            out["mqtt"].append(mqtt_trial(user, sim))
                        still_and_reset(user, DEVICE, sim)
                    if (i + 1) % 10 == 0:
                        print(f"  {i + 1}/{trials} trials", file=sys.stderr)
        finally:
            user.close()
            stop_process(daemon)
            sim.close()
    return out


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=50, help="e-stops by each path (50)")
    parser.add_argument(
        "--input",
        choices=["touch", "mouse"],
        default="touch",
        help="how the page's button is pressed: a touch tap (default) or a mouse click",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials: at least 1")
    lat = measure(args.trials, touch=args.input == "touch")
    page, click, mqtt = (summary_ms(lat[k]) for k in ("page", "page_from_click", "mqtt"))
    ratios: dict[str, Any] = {k: ratio(page[k], mqtt[k]) for k in KEYS}
    differences = [a - b for a, b in zip(lat["page"], lat["page_from_click"], strict=True)]
    harness = summary_ms(differences)
    print(
        f"e-stop, from the dashboard's treadmill page vs MQTT, to the stop byte at the treadmill "
        f"({args.trials} trials each, interleaved; {args.input} input)"
    )
    print(
        table(
            ["path", *KEYS],
            [
                ["baseline: MQTT publish cmd/estop", *(mqtt[k] for k in KEYS)],
                [f"page: {args.input} (Python, before the tap)", *(page[k] for k in KEYS)],
                ["  of which: click event in page -> stop", *(click[k] for k in KEYS)],
                ["  of which: input sent -> click event in page", *(harness[k] for k in KEYS)],
                ["ratio page / MQTT", *(ratios[k] for k in KEYS)],
            ],
        )
    )
    print(
        "ratio click event / MQTT: "
        + ", ".join(f"{k} {ratio(click[k], mqtt[k])}x" for k in ("p50_ms", "p99_ms"))
    )
    out = write_json(
        args.json,
        "dashboard_estop",
        {
            "trials": args.trials,
            "input": args.input,
            "mqtt": mqtt,
            "page": page,
            "page_from_click_event": click,
            "tap_to_click_event": harness,
            "ratio": ratios,
            "ratio_from_click_event": {k: ratio(click[k], mqtt[k]) for k in KEYS},
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
