"""Fleet: N daemons with N simulated treadmills on one broker; e-stop latency across the fleet
and CPU per daemon.

Run: uv run python bench/fleet.py [--daemons 20] [--rounds 5] [--window 20] [--json PATH]

N `treadctl run --config` subprocesses (10 Hz telemetry each), each on its own simulated
Woodway (a pty served by a thread of this process), all on one mosquitto broker. CPU per daemon
and RSS: /proc over `--window` seconds while every daemon runs a manual backward session. Then,
each round, every daemon gets a session and, in random order, an MQTT e-stop, timed from the
publish to the stop byte read on its pty. Baseline, interleaved in the same run under the same
load: the minimal paho-mqtt -> pyserial bridge (bench/baseline_bridge.py).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchkit import (
    DaemonSpec,
    Fleet,
    ThreadedTreadmill,
    User,
    add_mosquitto_default,
    baseline_trial,
    baseline_up,
    cpu_s,
    make_parser,
    mosquitto,
    ratio,
    ready,
    rss_mb,
    start_daemon,
    stop_process,
    summary_ms,
    table,
    wait,
    workdir,
)
from benchkit import write_json as write

from treadctl.sim.brokers import HOST

BRIDGE = Path(__file__).with_name("baseline_bridge.py")


def moving(sim: ThreadedTreadmill) -> bool:
    return sim.speed_kmh() <= -0.4


def still(sim: ThreadedTreadmill) -> bool:
    return abs(sim.speed_kmh()) < 0.01


def start_all(user: User, fleet: Fleet, names: list[str]) -> None:
    for name in names:
        user.until_ok(name, "set", {"speed_kmh": 1.0, "walk": "backward"}, timeout=30)
    for name, sim in zip(names, fleet.sims, strict=True):
        wait(partial(moving, sim), 30, f"{name}: belt moving")


def measure(n: int, rounds: int, window: float, nodelay: bool) -> dict[str, Any]:
    names = [f"fleet{i:03d}" for i in range(n)]
    base_topic = "bench/baseline/estop"
    lat: list[float] = []
    base: list[float] = []
    fleet = Fleet()
    with workdir() as wd, mosquitto(wd, nodelay=nodelay) as port:
        bsim = ThreadedTreadmill()
        bridge = subprocess.Popen(
            [sys.executable, str(BRIDGE), HOST, str(port), base_topic, bsim.path]
        )
        user = User(port)
        try:
            for name in names:
                sim = ThreadedTreadmill()
                fleet.sims.append(sim)
                fleet.procs.append(start_daemon(DaemonSpec(name, port, sim.path, wd)))
            for name in names:
                ready(user, name, timeout=60 + 2 * n)
            wait(lambda: baseline_up(user, base_topic, bsim), 10, "baseline bridge up")
            print(f"  {n} daemons ready", file=sys.stderr)
            start_all(user, fleet, names)
            pids = [p.pid for p in fleet.procs]
            before = [cpu_s(p) for p in pids]
            t0 = time.monotonic()
            time.sleep(window)
            elapsed = time.monotonic() - t0
            cpu = [100 * (cpu_s(p) - b) / elapsed for p, b in zip(pids, before, strict=True)]
            rss = [rss_mb(p) for p in pids]
            for r in range(rounds):
                if r:
                    start_all(user, fleet, names)
                order = list(zip(names, fleet.sims, strict=True))
                random.shuffle(order)
                for name, sim in order:
                    time.sleep(random.uniform(0.02, 0.1))
                    if random.random() < 0.5:
                        base.append(baseline_trial(user, base_topic, bsim))
                    count = sim.stop_count()
                    t = user.publish(user.topic(name, "estop"))
                    lat.append(sim.wait_stop(count) - t)
                for name, sim in zip(names, fleet.sims, strict=True):
                    wait(partial(still, sim), 20, f"{name}: still")
                    user.until_ok(name, "reset")
                print(f"  round {r + 1}/{rounds}", file=sys.stderr)
        finally:
            user.close()
            stop_process(bridge, 5)
            fleet.close()
            bsim.close()
    return {
        "daemons": n,
        "estop": summary_ms(lat),
        "baseline": summary_ms(base),
        "cpu_pct_per_daemon": {
            "mean": round(statistics.mean(cpu), 2),
            "max": round(max(cpu), 2),
            "total": round(sum(cpu), 1),
        },
        "rss_mb_per_daemon": {"mean": round(statistics.mean(rss), 1), "max": round(max(rss), 1)},
        "window_s": window,
        "mosquitto_set_tcp_nodelay": nodelay,
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--daemons", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=20.0)
    add_mosquitto_default(parser)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    r = measure(args.daemons, args.rounds, args.window, nodelay=not args.mosquitto_default)
    keys = ["n", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
    est, base = r["estop"], r["baseline"]
    print(f"fleet of {args.daemons} daemons on one broker (10 Hz telemetry each)")
    print(
        table(
            ["e-stop, publish -> stop byte", *keys],
            [
                ["baseline: paho-mqtt -> pyserial", *(base[k] for k in keys)],
                ["treadctl daemons", *(est[k] for k in keys)],
                ["ratio", None, *(ratio(est[k], base[k]) for k in keys[1:])],
            ],
        )
    )
    cpu, rss = r["cpu_pct_per_daemon"], r["rss_mb_per_daemon"]
    print(
        f"CPU per daemon (% of a core, session running): mean {cpu['mean']}, max {cpu['max']}, "
        f"all daemons {cpu['total']}; RSS per daemon MB: mean {rss['mean']}, max {rss['max']}"
    )
    out = write(args.json, "fleet", r)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
