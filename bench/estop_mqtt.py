"""E-stop latency: MQTT publish of `…/cmd/estop` → the stop byte read by the treadmill.

Run: uv run python bench/estop_mqtt.py [--trials 300] [--daemons 3] [--flood 1000] [--records]
     [--mosquitto-default] [--capture PCAP] [--json PATH]

One mosquitto broker on a free port; `treadctl run --config` as real subprocesses (`--daemons`,
taken in turn so that one's 3 s interlock runs out during the others' trials), each driving a
simulated Woodway on a pty; a manual backward session at 10 Hz telemetry. Each treadmill is
served by a thread of this process, which stamps the stop byte as the kernel hands it over, on
the same clock as the publish. Baseline, in the same run and interleaved trial by trial: a
minimal paho-mqtt → pyserial bridge (bench/baseline_bridge.py) on its own pty, through the same
broker and the same publishing client. Between trials: the belt stops, `reset`, and the 3 s
interlock (the configuration's minimum) passes before that daemon's next session starts.

`--flood RATE`: the junk-command flood of tests/mqtt/test_resilience.py (bench/command_flood.py)
at RATE messages a second, spread over every daemon's and the baseline's command topics (the
baseline then subscribes to its whole `cmd/+` and picks out the e-stop). `--records`: the clinic
is `online` and leaves each daemon's newest session record unacknowledged; on every other round,
its availability is published again just before the e-stop, which has every daemon send that
record again (QoS 1), and the e-stop follows as the measured daemon's record reaches the clinic
(its PUBACK on the way back). `--capture`: tcpdump on loopback, the broker's port, for
bench/estop_capture.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from benchkit import (
    DaemonSpec,
    ThreadedTreadmill,
    User,
    add_mosquitto_default,
    baseline_trial,
    baseline_up,
    make_parser,
    mosquitto,
    quantiles_ms,
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

HERE = Path(__file__).parent
BRIDGE = HERE / "baseline_bridge.py"
FLOOD = HERE / "command_flood.py"
BASE_PREFIX = "bench/baseline/cmd"
CLINIC = "treadctl/clinic/availability"
START = json.dumps({"speed_kmh": 1.0, "walk": "backward"}).encode()
RECORDS_KEPT = 1  # per daemon, not acknowledged: sent again at every `online`


class Records:
    """The clinic's part in `--records`: acknowledges all but each daemon's newest records."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.lock = threading.Lock()
        self.seen: dict[str, list[str]] = {}
        self.received = 0
        self.bytes = 0
        self.by_device: dict[str, int] = {}
        user.client.message_callback_add("treadctl/+/record", self._on_record)
        user.client.subscribe("treadctl/+/record", qos=1)
        user.client.publish(CLINIC, b"online", qos=1, retain=True)

    def _on_record(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        device = message.topic.split("/")[1]
        session = str(json.loads(message.payload)["session"]["id"])
        with self.lock:
            self.received += 1
            self.by_device[device] = self.by_device.get(device, 0) + 1
            self.bytes += len(message.payload)
            ids = self.seen.setdefault(device, [])
            if session not in ids:
                ids.append(session)
            old, self.seen[device] = ids[:-RECORDS_KEPT], ids[-RECORDS_KEPT:]
        for done in old:
            ack = json.dumps({"session": done}).encode()
            self.user.client.publish(f"treadctl/{device}/record/ack", ack, qos=1)

    def resend(self, device: str) -> int:
        """The clinic announces itself again: every daemon sends its newest record, not acked."""
        with self.lock:
            before = self.by_device.get(device, 0)
        self.user.client.publish(CLINIC, b"online", qos=1, retain=True)
        return before

    def wait_first(self, device: str, before: int, timeout: float = 1.0) -> bool:
        """Until `device`'s record has come (it is being sent when the e-stop goes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.by_device.get(device, 0) > before:
                    return True
            time.sleep(0.0005)
        return False


@contextlib.contextmanager
def capture(path: Path | None, port: int) -> Iterator[None]:
    if path is None:
        yield
        return
    if shutil.which("tcpdump") is None:
        sys.exit("bench: --capture needs tcpdump (apt-get install tcpdump)")
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path), f"tcp port {port}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # tcpdump listening
    try:
        yield
    finally:
        time.sleep(0.5)
        stop_process(proc, 5)


def measure(args: Any) -> dict[str, Any]:
    devices = [f"bench{i}" for i in range(args.daemons)]
    base_topic = f"{BASE_PREFIX}/estop"
    trials: list[dict[str, Any]] = []
    wall_minus_mono = time.time() - time.monotonic()
    with workdir() as wd, mosquitto(wd, nodelay=not args.mosquitto_default) as port:
        sims = {d: ThreadedTreadmill() for d in devices}
        bsim = ThreadedTreadmill()
        versions = {d: "old" if args.old_src and i % 2 else "new" for i, d in enumerate(devices)}
        procs = [
            start_daemon(
                DaemonSpec(d, port, sims[d].path, wd, rate_hz=10),
                extra_env={"PYTHONPATH": str(args.old_src)} if versions[d] == "old" else None,
            )
            for d in devices
        ]
        bridge = subprocess.Popen(
            [
                sys.executable,
                str(BRIDGE),
                HOST,
                str(port),
                base_topic,
                bsim.path,
                f"{BASE_PREFIX}/+",
            ]
        )
        user = User(port)
        flood: subprocess.Popen[bytes] | None = None
        try:
            for d in devices:
                ready(user, d)
            wait(lambda: baseline_up(user, base_topic, bsim), 10, "baseline bridge up")
            records = Records(user) if args.records else None
            if args.flood:
                prefixes = [f"treadctl/{d}/cmd" for d in devices] + [BASE_PREFIX]
                flood = subprocess.Popen(
                    [sys.executable, str(FLOOD), HOST, str(port), str(args.flood), *prefixes]
                )
            with capture(args.capture, port):
                for i in range(args.trials):
                    device = devices[i % len(devices)]
                    sim = sims[device]
                    running(user, device, sim)
                    # the next daemon's belt starts now, so that its ramp is not waited for
                    nxt = devices[(i + 1) % len(devices)]
                    if nxt != device:
                        user.client.publish(user.topic(nxt, "set"), START, qos=1)
                    time.sleep(random.uniform(0.05, 0.3))
                    base = baseline_trial(user, base_topic, bsim)
                    time.sleep(random.uniform(0.03, 0.15))
                    record_sent = None
                    # records in flight on every other round of the daemons
                    if records is not None and (i // len(devices)) % 2:
                        record_sent = records.wait_first(device, records.resend(device))
                    before = sim.stop_count()
                    t0 = user.publish(user.topic(device, "estop"))
                    stop = sim.wait_stop(before)
                    trials.append(
                        {
                            "device": device,
                            "version": versions[device],
                            "treadctl_s": stop - t0,
                            "baseline_s": base,
                            "publish_wall": t0 + wall_minus_mono,
                            "record_in_flight": record_sent,
                        }
                    )
                    still_and_reset(user, device, sim)
                    if (i + 1) % 25 == 0:
                        print(f"  {i + 1}/{args.trials} trials", file=sys.stderr)
        finally:
            if flood is not None:
                stop_process(flood, 5)
            user.close()
            stop_process(bridge, 5)
            for proc in procs:
                stop_process(proc)
            for sim in [*sims.values(), bsim]:
                sim.close()
    extra = (
        {"records_received": records.received, "records_bytes": records.bytes} if records else {}
    )
    return {"trials": trials, **extra}


def breakdown(trials: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Summaries by code version and by records in flight (and their baselines)."""
    groups: dict[str, list[float]] = {}
    for t in trials:
        rec = "" if t["record_in_flight"] is None else ", records in flight"
        groups.setdefault(f"treadctl {t['version']}{rec}", []).append(t["treadctl_s"])
        groups.setdefault(f"baseline ({t['version']}{rec} rounds)", []).append(t["baseline_s"])
    return {name: summary_ms(values) for name, values in sorted(groups.items())}


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--daemons", type=int, default=3, help="taken in turn (default 3)")
    parser.add_argument(
        "--flood", type=float, default=0.0, metavar="RATE", help="junk commands a second, all"
    )
    parser.add_argument("--records", action="store_true", help="session records in flight")
    parser.add_argument("--capture", type=Path, metavar="PCAP", help="tcpdump to this file")
    parser.add_argument(
        "--old-src",
        type=Path,
        metavar="DIR",
        help="every other daemon runs the treadctl package in DIR (PYTHONPATH): an A/B run",
    )
    add_mosquitto_default(parser)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.strftime("%H:%M:%S")
    result = measure(args)
    trials = [t for t in result["trials"] if t["version"] == "new"]
    daemon = summary_ms([t["treadctl_s"] for t in trials])
    base = summary_ms([t["baseline_s"] for t in trials])
    keys = ["p50_ms", "p95_ms", "p99_ms", "max_ms"]
    ratios = {k: ratio(daemon[k], base[k]) for k in keys}
    broker = "default" if args.mosquitto_default else "set_tcp_nodelay true"
    print(
        f"e-stop latency, MQTT publish -> stop byte at the treadmill ({args.trials} trials "
        f"each; mosquitto {broker}; {args.daemons} daemons; flood {args.flood:g}/s; "
        f"records {'in flight' if args.records else 'off'}; started {started})"
    )
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
    groups = breakdown(result["trials"])
    if len(groups) > 1:
        print(
            table(
                ["trials", "n", *keys],
                [[g, s["n"], *(s[k] for k in keys)] for g, s in groups.items()],
            )
        )
    # The whole distribution: under the flood it has two modes, and the median can fall between.
    shape = {
        "treadctl": quantiles_ms([t["treadctl_s"] for t in trials]),
        "baseline": quantiles_ms([t["baseline_s"] for t in trials]),
    }
    for who, qs in shape.items():
        print(f"quantiles 10/25/50/75/90 %, {who}: " + " / ".join(f"{v:.3f}" for v in qs.values()))
    target = {"ratio_p99_max": 1.2, "ratio_p50_max": 1.1}
    met = (ratios["p99_ms"] or 0) <= 1.2 and (ratios["p50_ms"] or 0) <= 1.1
    print(f"target: p99 <= 1.2x and p50 <= 1.1x the baseline: {'met' if met else 'MISSED'}")
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
            "daemons": args.daemons,
            "flood_per_s": args.flood,
            "records": args.records,
            "capture": str(args.capture) if args.capture else None,
            "started": started,
            "old_src": str(args.old_src) if args.old_src else None,
            "groups": groups,
            "quantiles_ms": shape,
            **result,
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
