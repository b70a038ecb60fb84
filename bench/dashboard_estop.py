"""E-stop from the dashboard: a tap on the treadmill page's E-STOP button → the stop byte read by
the treadmill, against the MQTT e-stop (publish `…/cmd/estop` → the stop byte) on the same
daemon and broker, interleaved trial by trial.

Run: uv run python bench/dashboard_estop.py [--trials 50] [--input touch|mouse] [--json PATH]

Real processes: mosquitto on a free port (`set_tcp_nodelay true`, as bench/estop_mqtt.py), two
simulated Woodways on ptys served by threads of this process (each stamps the stop byte as the
kernel hands it over), a `treadctl run` driving each at 10 Hz telemetry, the clinic service
(`treadctl clinic`, SQLite in a temporary directory, an admin account made before it starts) and
Debian's Chromium, logged in, with each treadmill's page (`/treadmills/bench-a`, `…/bench-b`)
in a tab of its own, driven over CDP by Playwright.

Each e-stop: a manual backward session (`cmd/set` over MQTT), the belt moving, a random
0.1-0.5 s; the e-stop; the belt still, `reset` (over MQTT). Each trial is two e-stops, one by
each path in random order, one on each treadmill, so that one treadmill's 3 s interlock (the
configuration's least) runs out during the other's e-stop: both paths go through both daemons,
the same broker and the same load. 50 trials take about 5 min.

- page: the time is taken in Python just before Playwright sends the tap (`touchscreen.tap` at
  the button's centre, found once: the button is fixed at the top of the page; `--input mouse`:
  `mouse.click` there), and ends at the stop byte. So it includes Playwright's CDP round trips
  and Chromium turning the touch into a click. A capture listener added by this benchmark (the
  page is not edited) stamps the click event as the page's own handler receives it, which
  splits the figure into tap → click event in the page, and click event → stop byte (the
  page's fetch, the service, the broker, the daemon). This process's MQTT client also subscribes
  to `cmd/estop`: the service's message reaching it marks where the page and service's part ends
  and the broker and daemon's begins.
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
    Fleet,
    ThreadedTreadmill,
    User,
    make_parser,
    mosquitto,
    ratio,
    ready,
    running,
    start_daemon,
    still_and_reset,
    summary_ms,
    table,
    wait,
    workdir,
    write_json,
)
from dashkit import WAIT_MS, Chromium, Clinic, chromium, clinic_service, login
from playwright.sync_api import Page, expect

DEVICES = ("bench-a", "bench-b")
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

    def __init__(self, browser: Chromium, clinic: Clinic, device: str, touch: bool) -> None:
        self.device, self.touch = device, touch
        self.page: Page = browser.new_page(touch=touch)
        self.page.add_init_script(CLICK_STAMP)
        login(self.page, clinic)
        self.page.goto(f"{clinic.base}/treadmills/{device}")
        state = self.page.locator(f'article.tile[data-device="{device}"] .tile-state')
        expect(state).to_have_text(re.compile("^live"), timeout=30_000)
        box = self.page.get_by_role("button", name="E-STOP", exact=True).bounding_box()
        if box is None:
            raise RuntimeError("the E-STOP button is not on the page")
        self.x, self.y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.status = self.page.locator("#estop-status")

    def trial(self, sim: ThreadedTreadmill, user: User) -> tuple[float, float, float]:
        """(tap → stop byte, click event in the page → stop byte, click event → the service's
        `cmd/estop` delivered to this process's MQTT client), in seconds."""
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
        sent = delivered(user, self.device, t0)
        return stop - t0, stop - clicked, sent - clicked


def delivered(user: User, device: str, after: float) -> float:
    """When this process's client got the first `cmd/estop` sent after `after` (monotonic)."""
    topic = user.topic(device, "estop")

    def first() -> float | None:
        return next((t for t, top, _ in list(user.messages) if top == topic and t > after), None)

    wait(lambda: first() is not None, 5, "the page's cmd/estop on the broker")
    return first() or 0.0


def mqtt_trial(user: User, device: str, sim: ThreadedTreadmill) -> float:
    before = sim.stop_count()
    t0 = user.publish(user.topic(device, "estop"))
    return sim.wait_stop(before) - t0


def measure(trials: int, touch: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"page": [], "page_from_click": [], "to_broker": [], "mqtt": []}
    fleet = Fleet()
    with workdir() as wd, mosquitto(wd) as port:
        user = User(port)
        try:
            for device in DEVICES:
                fleet.sims.append(sim := ThreadedTreadmill())
                fleet.procs.append(start_daemon(DaemonSpec(device, port, sim.path, wd, rate_hz=10)))
                user.client.subscribe(user.topic(device, "estop"), qos=0)  # the service's too
            for device in DEVICES:
                ready(user, device)
            with clinic_service(wd, port) as clinic, chromium(wd / "chromium") as browser:
                pages = [PageTrials(browser, clinic, device, touch) for device in DEVICES]
                for i in range(trials):
                    # one e-stop by each path, one on each treadmill, in random order: while one
                    # treadmill's interlock runs out, the other has its trial
                    paths = random.sample(["page", "mqtt"], 2)
                    for path, page, sim in zip(paths, pages, fleet.sims, strict=True):
                        running(user, page.device, sim)
                        time.sleep(random.uniform(0.1, 0.5))
                        if path == "page":
                            tap, click, to_broker = page.trial(sim, user)
                            out["page"].append(tap)
                            out["page_from_click"].append(click)
                            out["to_broker"].append(to_broker)
                        else:
                            out["mqtt"].append(mqtt_trial(user, page.device, sim))
                        still_and_reset(user, page.device, sim)
                    if (i + 1) % 10 == 0:
                        print(f"  {i + 1}/{trials} trials", file=sys.stderr)
        finally:
            user.close()
            fleet.close()
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
    to_broker = summary_ms(lat["to_broker"])
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
                ["  click event -> cmd/estop via the broker", *(to_broker[k] for k in KEYS)],
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
            "click_event_to_broker": to_broker,
            "ratio": ratios,
            "ratio_from_click_event": {k: ratio(click[k], mqtt[k]) for k in KEYS},
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
