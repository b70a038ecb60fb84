"""E-stop latency: MQTT publish of `…/cmd/estop` → the stop byte read by the treadmill.

Run: uv run python bench/estop_mqtt.py [--trials 100] [--json PATH]

One mosquitto broker on a free port; `treadctl run --config` as a real subprocess driving a
simulated Woodway on a pty; a manual backward session at 10 Hz telemetry. The treadmill is
served by a thread of this process, which stamps the stop byte as the kernel hands it over, on
the same clock as the publish. Baseline, in the same run and interleaved trial by trial: a
minimal paho-mqtt → pyserial bridge (bench/baseline_bridge.py) on its own pty and topic, through
the same broker and the same publishing client. Between trials: the belt stops, `reset`, and the
3 s interlock (the configuration's minimum) passes before the next session starts.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    add_mosquitto_default,
    baseline_trial,
    baseline_up,
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
    wait,
    workdir,
    write_json,
)

from treadctl.sim.brokers import HOST

BRIDGE = Path(__file__).with_name("baseline_bridge.py")


def measure(trials: int, nodelay: bool) -> tuple[list[float], list[float]]:
    device, base_topic = "bench", "bench/baseline/estop"
    daemon_lat: list[float] = []
    base_lat: list[float] = []
    with workdir() as wd, mosquitto(wd, nodelay=nodelay) as port:
        sim, bsim = ThreadedTreadmill(), ThreadedTreadmill()
        daemon = start_daemon(DaemonSpec(device, port, sim.path, wd, rate_hz=10))
        bridge = subprocess.Popen(
            [sys.executable, str(BRIDGE), HOST, str(port), base_topic, bsim.path]
        )
        user = User(port)
        try:
            ready(user, device)
            wait(lambda: baseline_up(user, base_topic, bsim), 10, "baseline bridge up")
            for i in range(trials):
                running(user, device, sim)
                time.sleep(random.uniform(0.1, 0.5))
                base_lat.append(baseline_trial(user, base_topic, bsim))
                time.sleep(random.uniform(0.05, 0.3))
                before = sim.stop_count()
                t0 = user.publish(user.topic(device, "estop"))
                daemon_lat.append(sim.wait_stop(before) - t0)
                still_and_reset(user, device, sim)
                if (i + 1) % 10 == 0:
                    print(f"  {i + 1}/{trials} trials", file=sys.stderr)
        finally:
            user.close()
            stop_process(bridge, 5)
            stop_process(daemon)
            sim.close()
            bsim.close()
    return daemon_lat, base_lat


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=100)
    add_mosquitto_default(parser)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    daemon_lat, base_lat = measure(args.trials, nodelay=not args.mosquitto_default)
    daemon, base = summary_ms(daemon_lat), summary_ms(base_lat)
    ratios = {k: ratio(daemon[k], base[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
    broker = "default" if args.mosquitto_default else "set_tcp_nodelay true"
    print(
        f"e-stop latency, MQTT publish -> stop byte at the treadmill ({args.trials} trials "
        f"each; mosquitto {broker})"
    )
    keys = ["p50_ms", "p95_ms", "p99_ms", "max_ms"]
    print(
        table(
            ["path", *keys],
            [
                ["baseline: paho-mqtt -> pyserial", *(base[k] for k in keys)],
                ["treadctl run (subprocess)", *(daemon[k] for k in keys)],
                ["ratio", *(ratios[k] for k in keys)],
            ],
        )
    )
    target = {"p99_ms_max": 5.0, "ratio_p99_max": 1.5}
    met = daemon["p99_ms"] <= target["p99_ms_max"] and (ratios["p99_ms"] or 0) <= 1.5
    print(f"target: p99 <= 5 ms and <= 1.5x baseline: {'met' if met else 'MISSED'}")
    out = write_json(
        args.json,
        "estop_mqtt",
        {
            "daemon": daemon,
            "baseline": base,
            "ratio": ratios,
            "target": target,
            "met": met,
            "mosquitto_set_tcp_nodelay": not args.mosquitto_default,
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
