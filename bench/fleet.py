"""Fleet: many treadmills on one mosquitto. E-stop latency of real daemons against the fleet's
size, the broker's CPU, and the clinic service ingesting every treadmill's 10 Hz telemetry.

Run: uv run python bench/fleet.py [--sizes 10,20,50,100] [--daemons auto|N] [--trials 100]
     [--window 10] [--no-clinic] [--json PATH]

Real daemons: `treadctl run --config` subprocesses (10 Hz telemetry each), each on its own
simulated Woodway (a pty served by a thread of this process, which stamps every request on
arrival). A two-core machine cannot run 100 of them beside 100 treadmills (in a clinic each
daemon has a computer of its own), so the fleet is R real daemons and, for the rest, load
generators (bench/loadgen.py, processes of their own) that publish exactly what a daemon
publishes and answer its commands.

Everything runs on one broker: the clinic service (`treadctl clinic` on SQLite, its live stream
read by bench/live_client.py as the dashboard's EventSource does) and the baseline bridge from
the start, then the treadmills.

R (`--daemons auto`): the largest fleet is started as generators, and daemons replace them
`--step` at a time (the generators run in processes of `--step` treadmills), each daemon in a
manual backward session, until the daemons starve: over a `--ramp-window` (longer when needed for
`--ramp-ticks` ticks, 1000: a p99 of fewer is their few latest) with all of them
running, a daemon in `fault`, the 99th percentile of its 100 ms tick's lateness over
`--tick-late-ms` (25), or of the time the treadmill takes to see a status poll's three requests
(two round trips: the daemon's and the treadmill's responsiveness together) over
`--poll-span-ms` (10). The step that starved is undone; R is what is left (at most
`--max-daemons`). The ramp thus runs under the whole fleet's load, clinic and broker included.

Then each of `--sizes`, the largest first: min(size, R) real daemons, the rest generators, and

- a `--window` with every real daemon in a session: CPU (% of one core; Δ utime+stime from
  /proc) of the broker, the clinic service, each daemon, the generators, this process and the
  machine; the clinic service's RSS; the daemons' tick lateness and poll span as above; the lag
  from each generator sample's `ts` to the live stream's `tile` event carrying it, and, as its
  baseline, to a plain paho-mqtt subscriber (bench/telemetry_subscriber.py, run in the window);
- e-stop rounds until `--trials` e-stops: every real daemon gets a session, then an MQTT e-stop
  in random order, timed from the publish to the stop byte read on its pty; before each, a
  trial of the baseline bridge (bench/baseline_bridge.py) under the same load.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    pct,
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
from loadgen import PREFIX

from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.brokers import HOST, Broker, find_mosquitto, mosquitto_broker

HERE = Path(__file__).parent
BRIDGE = HERE / "baseline_bridge.py"
LOADGEN = HERE / "loadgen.py"
LIVE = HERE / "live_client.py"
SUBSCRIBER = HERE / "telemetry_subscriber.py"
BASE_TOPIC = "bench/baseline/estop"
TICK_S = 0.1
TICK_LATE_MS = 25.0  # a quarter of the tick
POLL_SPAN_MS = 10.0  # two round trips on a pty take ~1 ms when nothing waits
STOP_WAIT_S = 5.0


# --- the parts ---------------------------------------------------------------------------------


@dataclass
class Generators:
    proc: subprocess.Popen[bytes]
    count: int
    stats: Path
    samples: Path


@dataclass
class Rig:
    """Everything on one broker. Daemons and generators come and go (a removed one says
    `offline`); their names are never reused."""

    wd: Path
    broker: Broker
    user: User
    chunk: int  # treadmills a generator process
    fleet: Fleet = field(default_factory=Fleet)
    names: list[str] = field(default_factory=list)
    generators: list[Generators] = field(default_factory=list)
    clinic: Any = None  # dashkit.Clinic when the service runs
    baseline: ThreadedTreadmill | None = None  # the baseline bridge's
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    retired: Fleet = field(default_factory=Fleet)
    done: list[Generators] = field(default_factory=list)  # stopped: their figures written
    started_daemons: int = 0
    started_generators: int = 0

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def generator_count(self) -> int:
        return sum(g.count for g in self.generators)

    def add_daemons(self, count: int) -> None:
        new = []
        for _ in range(count):
            name = f"fleet{self.started_daemons:03d}"
            self.started_daemons += 1
            sim = ThreadedTreadmill()
            self.fleet.sims.append(sim)
            self.fleet.procs.append(start_daemon(DaemonSpec(name, self.port, sim.path, self.wd)))
            self.names.append(name)
            new.append(name)
        for name in new:
            ready(self.user, name, timeout=60 + 2 * len(self.names))
        start_all(self.user, self.fleet, self.names, new)

    def remove_daemons(self, count: int) -> None:
        for _ in range(count):
            self.names.pop()
            self.retired.sims.append(self.fleet.sims.pop())
            proc = self.fleet.procs.pop()
            self.retired.procs.append(proc)
            stop_process(proc, 20)

    def add_generators(self, count: int) -> None:
        """In processes of `chunk` treadmills, so that both cores serve them and they can be
        taken away a chunk at a time."""
        while count > 0:
            n = min(count, self.chunk)
            k = len(self.generators) + len(self.done)
            stats, samples = self.wd / f"gen{k}.json", self.wd / f"gen{k}.samples"
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(LOADGEN),
                    str(self.port),
                    f"--count={n}",
                    f"--first={self.started_generators}",
                    f"--stats={stats}",
                    f"--samples={samples}",
                ],
                stdout=subprocess.PIPE,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("a load generator did not start: see its stderr")
            self.generators.append(Generators(proc, n, stats, samples))
            self.started_generators += n
            count -= n

    def remove_generators(self, count: int) -> None:
        """At least `count` (whole processes, the newest first)."""
        while count > 0 and self.generators:
            g = self.generators.pop()
            stop_process(g.proc, 20)  # it writes its figures on SIGTERM
            self.done.append(g)
            count -= g.count

    def resize(self, daemons: int, generators: int) -> None:
        if len(self.names) > daemons:
            self.remove_daemons(len(self.names) - daemons)
        if self.generator_count > generators:
            self.remove_generators(self.generator_count - generators)
        if len(self.names) < daemons:
            self.add_daemons(daemons - len(self.names))
        if self.generator_count < generators:
            self.add_generators(generators - self.generator_count)

    def pids(self) -> dict[str, list[int]]:
        pids = {
            "broker": [self.broker.proc.pid] if self.broker.proc else [],
            "daemons": [p.pid for p in self.fleet.procs],
            "generators": [g.proc.pid for g in self.generators],
            "bench": [os.getpid()],
        }
        if self.clinic is not None:
            pids["clinic"] = [self.clinic.proc.pid]
        return pids

    def close(self) -> None:
        self.remove_generators(self.generator_count)
        for proc in self.extra:
            stop_process(proc, 10)
        self.user.close()
        self.fleet.close()
        self.retired.close()


def moving(sim: ThreadedTreadmill) -> bool:
    return sim.speed_kmh() <= -0.4


def still(sim: ThreadedTreadmill) -> bool:
    return abs(sim.speed_kmh()) < 0.01


def start_all(user: User, fleet: Fleet, names: list[str], which: list[str]) -> None:
    for name in which:
        user.until_ok(name, "set", {"speed_kmh": 1.0, "walk": "backward"}, timeout=30)
    for name, sim in zip(names, fleet.sims, strict=True):
        if name in which:
            wait(partial(moving, sim), 30, f"{name}: belt moving")


def faulted(user: User, names: list[str]) -> list[str]:
    """The daemons whose last state said `fault`."""
    last: dict[str, str] = {}
    for _t, topic, payload in list(user.messages):
        parts = topic.split("/")
        if len(parts) == 3 and parts[2] == "state" and parts[1] in names:
            with contextlib.suppress(ValueError, AttributeError):
                last[parts[1]] = str(json.loads(payload).get("mode"))
    return sorted(n for n, mode in last.items() if mode == "fault")


# --- measuring ---------------------------------------------------------------------------------


def ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(1e3 * statistics.median(values), 2),
        "p99_ms": round(1e3 * pct(values, 99), 2),
        "max_ms": round(1e3 * max(values), 2),
    }


def ticks(sims: list[ThreadedTreadmill], t0: float, t1: float) -> dict[str, Any]:
    """From the requests' arrivals: each status poll (GET_STATE, GET_SPEED, GET_ELEVATION) is
    one tick; lateness = the interval from the previous poll beyond the 100 ms tick, span = the
    first request to the last."""
    late: list[float] = []
    span: list[float] = []
    for sim in sims:
        with sim.lock:
            requests = [(t, r.op) for t, r in sim.requests if t0 <= t <= t1]
        polls = [t for t, op in requests if op == Op.GET_STATE]
        late += [max(0.0, b - a - TICK_S) for a, b in itertools.pairwise(polls)]
        ends = [t for t, op in requests if op == Op.GET_ELEVATION]
        for t in polls:
            k = bisect.bisect_left(ends, t)
            if k < len(ends) and ends[k] - t < TICK_S:
                span.append(ends[k] - t)
    return {"tick_late": ms(late), "poll_span": ms(span)}


def busy_s() -> tuple[float, float]:
    """The machine's (busy, total) CPU seconds from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / tck, sum(fields[:8]) / tck


def group_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_s(pid)
    return total


def window(rig: Rig, seconds: float) -> dict[str, Any]:
    """CPU of every part, the clinic's RSS and the daemons' ticks over `seconds`."""
    pids = rig.pids()
    before = {k: group_cpu(v) for k, v in pids.items()}
    per_daemon = [group_cpu([p]) for p in pids["daemons"]]
    busy0, total0 = busy_s()
    t0, wall0 = time.monotonic(), time.time()
    rss = 0.0
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        if rig.clinic is not None:
            rss = max(rss, rig.clinic.rss_mb())
    t1, wall1 = time.monotonic(), time.time()
    busy1, total1 = busy_s()
    span = t1 - t0
    cpu = {k: round(100 * (group_cpu(v) - before[k]) / span, 1) for k, v in pids.items()}
    daemons = [
        100 * (group_cpu([p]) - b) / span for p, b in zip(pids["daemons"], per_daemon, strict=True)
    ]
    out: dict[str, Any] = {
        "seconds": round(span, 1),
        "wall": [wall0, wall1],
        "cpu_pct": cpu,
        "cpu_pct_per_daemon": {
            "mean": round(statistics.mean(daemons), 2) if daemons else None,
            "max": round(max(daemons), 2) if daemons else None,
        },
        "machine_busy_pct": round(100 * (busy1 - busy0) / (total1 - total0), 1),
        "rss_mb_per_daemon": round(statistics.mean(rss_mb(p) for p in pids["daemons"]), 1)
        if pids["daemons"]
        else None,
        "faulted": faulted(rig.user, rig.names),
        **ticks(rig.fleet.sims, t0, t1),
    }
    if rig.clinic is not None:
        out["clinic_rss_mb"] = round(rss, 1)
    return out


def starving(w: dict[str, Any], tick_late_ms: float, poll_span_ms: float) -> str | None:
    """Why the daemons starve in window `w`, or None."""
    if w["faulted"]:
        return f"in fault: {', '.join(w['faulted'])}"
    late, poll = w["tick_late"]["p99_ms"], w["poll_span"]["p99_ms"]
    if late is None or late > tick_late_ms:
        return f"tick lateness p99 {late} ms > {tick_late_ms}"
    if poll is None or poll > poll_span_ms:
        return f"poll span p99 {poll} ms > {poll_span_ms}"
    return None


def estop_rounds(rig: Rig, trials: int) -> tuple[list[float], list[float], int, int]:
    """(daemon latencies, baseline latencies, rounds, stops missed), s: rounds of an e-stop on
    every daemon, at least `trials` in all. A stop byte that never came counts as STOP_WAIT_S."""
    user, fleet, names = rig.user, rig.fleet, rig.names
    bsim = rig.baseline
    assert bsim is not None
    lat: list[float] = []
    base: list[float] = []
    rounds, missed = math.ceil(trials / len(names)), 0
    for r in range(rounds):
        if r:
            start_all(user, fleet, names, names)
        order = list(zip(names, fleet.sims, strict=True))
        random.shuffle(order)
        for name, sim in order:  # every one: the round ends with each daemon reset
            time.sleep(random.uniform(0.02, 0.1))
            base.append(baseline_trial(user, BASE_TOPIC, bsim))
            time.sleep(random.uniform(0.01, 0.05))
            count = sim.stop_count()
            t = user.publish(user.topic(name, "estop"))
            try:
                lat.append(sim.wait_stop(count, STOP_WAIT_S) - t)
            except TimeoutError:
                lat.append(STOP_WAIT_S)
                missed += 1
                print(f"  {name}: NO STOP BYTE within {STOP_WAIT_S} s", file=sys.stderr)
        for name, sim in zip(names, fleet.sims, strict=True):
            wait(partial(still, sim), 20, f"{name}: still")
            user.until_ok(name, "reset")
    start_all(user, fleet, names, names)  # every daemon back in a session for the next window
    return lat, base, rounds, missed


@contextlib.contextmanager
def rig(args: Any) -> Iterator[Rig]:
    """The broker, the baseline bridge, the clinic service and its live stream's reader."""
    from dashkit import clinic_service  # noqa: PLC0415 - the clinic extra, only when asked

    with (
        workdir() as wd,
        mosquitto_broker(wd, nodelay=not args.mosquitto_default) as broker,
        contextlib.ExitStack() as stack,
    ):
        r = Rig(wd, broker, User(broker.port), chunk=args.step)
        stack.callback(r.close)
        r.baseline = bsim = ThreadedTreadmill()
        stack.callback(bsim.close)
        bridge = [sys.executable, str(BRIDGE), HOST, str(r.port), BASE_TOPIC, bsim.path]
        r.extra.append(subprocess.Popen(bridge))
        wait(lambda: baseline_up(r.user, BASE_TOPIC, bsim), 10, "baseline bridge up")
        if args.clinic:
            r.clinic = clinic = stack.enter_context(clinic_service(wd, r.port, PREFIX))
            account = clinic.account
            reader = [sys.executable, str(LIVE), clinic.base, account.username, account.password]
            live = subprocess.Popen([*reader, str(wd / "live.txt")], stdout=subprocess.PIPE)
            r.extra.append(live)
            assert live.stdout is not None
            live.stdout.readline()
        yield r


# --- R: as many daemons as the machine holds ------------------------------------------------------


def ramp(r: Rig, args: Any, full: int) -> dict[str, Any]:
    """Under the full fleet's load: daemons replace generators `--step` at a time until they
    starve; the step that starved is undone."""
    steps: list[dict[str, Any]] = []
    most = min(args.max_daemons, full)
    while len(r.names) < most:
        k = min(args.step, most - len(r.names))
        r.resize(len(r.names) + k, full - len(r.names) - k)
        time.sleep(1.0)
        # A p99 of a few hundred ticks is their 3rd latest: at 5 daemons (245 in 5 s) a few ticks
        # 45-54 ms late under the generators' load starved a step that 10 daemons passed at
        # 2.2 ms. Each step's window holds at least --ramp-ticks ticks.
        seconds = max(args.ramp_window, args.ramp_ticks * TICK_S / len(r.names))
        w = window(r, seconds)
        why = starving(w, args.tick_late_ms, args.poll_span_ms)
        steps.append(
            {"daemons": len(r.names), "generators": r.generator_count, "starving": why, **w}
        )
        print(
            f"  ramp: {len(r.names)} daemons + {r.generator_count} generators: tick late p99 "
            f"{w['tick_late']['p99_ms']} ms, poll span p99 {w['poll_span']['p99_ms']} ms, "
            f"machine {w['machine_busy_pct']} %{': ' + why if why else ''}",
            file=sys.stderr,
        )
        if why:
            r.resize(len(r.names) - k, full - len(r.names) + k)
            break
    return {"chosen": len(r.names), "steps": steps}


# --- the fleet through its sizes ----------------------------------------------------------------


@dataclass
class Lags:
    """The generators' samples (ts by device and heart rate), to name a tile's sample."""

    ts: dict[tuple[str, int], list[float]] = field(default_factory=lambda: defaultdict(list))

    def load(self, paths: list[Path]) -> None:
        for path in paths:
            for line in path.read_text().splitlines():
                ts, device, bpm = line.split()
                self.ts[device, int(bpm)].append(float(ts))
        for stamps in self.ts.values():
            stamps.sort()

    def sample(self, device: str, bpm: int, at: float) -> float | None:
        stamps = self.ts.get((device, bpm), [])
        k = bisect.bisect_right(stamps, at + 0.001) - 1  # ts is rounded to the ms
        return stamps[k] if k >= 0 else None


def live_lags(lines: str, lags: Lags, start: float, end: float) -> list[float]:
    """ts -> the tile event, for each generator sample's first tile in [start, end]."""
    out: list[float] = []
    last: dict[str, str] = {}
    for line in lines.splitlines():
        at_s, device, bpm, _mode = line.split()
        if bpm == last.get(device):
            continue  # the same sample again (a state change): not a new push of telemetry
        last[device] = bpm
        at = float(at_s)
        if start <= at <= end and bpm != "-":
            ts = lags.sample(device, int(bpm), at)
            if ts is not None and start <= ts:
                out.append(at - ts)
    return out


def subscriber_lags(lines: str, prefix: str = "gen-") -> list[float]:
    out = []
    for line in lines.splitlines():
        at, ts, topic = line.split()
        if topic.split("/")[1].startswith(prefix):
            out.append(float(at) - float(ts))
    return out


def measure(args: Any, progress: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """The ramp (with `--daemons auto`), then each size, largest first; `progress` gets what
    is known so far after each part."""
    sizes: list[dict[str, Any]] = []
    with rig(args) as r:
        full = max(args.sizes)
        found = ramp(r, args, full) if args.daemons == "auto" else None
        real = found["chosen"] if found else int(args.daemons)
        progress({"real_daemons": real, "ramp": found, "sizes": sizes})
        if real < 1:
            sys.exit(f"bench: not even {args.step} daemons ran without starving: {found}")
        for size in sorted(args.sizes, reverse=True):
            daemons = min(size, real)
            r.resize(daemons, size - daemons)
            print(f"  {size}: {daemons} daemons, {r.generator_count} generators", file=sys.stderr)
            sizes.append(one_size(r, args, size))
            progress({"real_daemons": real, "ramp": found, "sizes": sizes})
        for proc in r.extra:
            stop_process(proc, 10)  # the readers write what they heard on SIGTERM
        r.remove_generators(r.generator_count)
        lags = Lags()
        lags.load([g.samples for g in r.done if g.samples.exists()])
        live = r.wd / "live.txt"
        text = live.read_text() if live.exists() else ""
        for s in sizes:
            a, b = s["window"]["wall"]
            s["window"]["live_lag"] = ms(live_lags(text, lags, a, b))
        stats = [json.loads(g.stats.read_text()) for g in r.done if g.stats.exists()]
    return {"real_daemons": real, "ramp": found, "sizes": sizes, "generator_stats": stats}


def one_size(r: Rig, args: Any, size: int) -> dict[str, Any]:
    time.sleep(2.0)
    heard = r.wd / f"heard{size}.txt"
    topic = f"{PREFIX}/+/telemetry"
    sub = subprocess.Popen([sys.executable, str(SUBSCRIBER), HOST, str(r.port), topic, str(heard)])
    time.sleep(1.0)
    w = window(r, args.window)
    stop_process(sub, 10)
    w["subscriber_lag"] = ms(subscriber_lags(heard.read_text()))
    lat, base, rounds, missed = estop_rounds(r, args.trials)
    estop, baseline = summary_ms(lat), summary_ms(base)
    print(
        f"  {size}: e-stop p99 {estop['p99_ms']} ms, baseline {baseline['p99_ms']} ms; broker "
        f"{w['cpu_pct']['broker']} %, machine {w['machine_busy_pct']} %",
        file=sys.stderr,
    )
    return {
        "size": size,
        "daemons": len(r.names),
        "generators": r.generator_count,
        "estop": estop,
        "baseline": baseline,
        "ratio": {
            k: ratio(estop[k], baseline[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
        },
        "estop_ms": [round(v * 1e3, 3) for v in lat],
        "baseline_ms": [round(v * 1e3, 3) for v in base],
        "rounds": rounds,
        "stops_missed": missed,
        "window": w,
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--sizes", default="10,20,50,100", help="fleet sizes (10,20,50,100)")
    parser.add_argument("--daemons", default="auto", help="real daemons at most: N, or auto")
    parser.add_argument("--max-daemons", type=int, default=60, help="for auto (60)")
    parser.add_argument("--step", type=int, default=5, help="for auto: daemons added a step (5)")
    parser.add_argument("--ramp-window", type=float, default=5.0, help="for auto, s (5)")
    parser.add_argument(
        "--ramp-ticks", type=int, default=1000, help="for auto: ticks a window at least (1000)"
    )
    parser.add_argument("--tick-late-ms", type=float, default=TICK_LATE_MS, help="for auto")
    parser.add_argument("--poll-span-ms", type=float, default=POLL_SPAN_MS, help="for auto")
    parser.add_argument("--trials", type=int, default=100, help="e-stops a size (100)")
    parser.add_argument("--window", type=float, default=10.0, help="measuring window, s (10)")
    parser.add_argument("--no-clinic", dest="clinic", action="store_false")
    add_mosquitto_default(parser)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes: {args.sizes!r} is not a list of numbers such as 10,20,50,100")
    if not args.sizes or args.sizes[0] < 1 or args.trials < 1 or args.window <= 0:
        parser.error("--sizes >= 1 each, --trials >= 1, --window > 0")
    if args.daemons != "auto" and not (args.daemons.isdigit() and int(args.daemons) >= 1):
        parser.error(f"--daemons: {args.daemons!r}: a number >= 1, or auto")
    if args.max_daemons < 1 or args.step < 1 or args.ramp_window <= 0:
        parser.error("--max-daemons, --step >= 1; --ramp-window > 0")
    if find_mosquitto() is None:
        sys.exit("bench: mosquitto is needed (apt-get install mosquitto)")
    sys.setswitchinterval(0.001)  # the treadmills' threads answer as the daemon's would
    extra = {
        "thresholds": {
            "tick_late_p99_ms": args.tick_late_ms,
            "poll_span_p99_ms": args.poll_span_ms,
        },
        "mosquitto_set_tcp_nodelay": not args.mosquitto_default,
    }
    result = measure(args, lambda partial: write(args.json, "fleet", {**partial, **extra}))
    real, sizes = result["real_daemons"], result["sizes"]
    print(f"fleet on one broker, 10 Hz telemetry each; real daemons at most {real}")
    print(
        table(
            [
                "size (daemons+gen.)",
                "e-stops",
                "p50",
                "p99",
                "baseline p50",
                "p99",
                "ratio p99",
                "missed",
            ],
            [
                [
                    f"{s['size']} ({s['daemons']}+{s['generators']})",
                    s["estop"]["n"],
                    s["estop"]["p50_ms"],
                    s["estop"]["p99_ms"],
                    s["baseline"]["p50_ms"],
                    s["baseline"]["p99_ms"],
                    s["ratio"]["p99_ms"],
                    s["stops_missed"],
                ]
                for s in sizes
            ],
        )
    )
    print(
        table(
            ["size", "broker %", "clinic %", "clinic MB", "daemon %", "gen. %", "machine % of 2"],
            [
                [
                    s["size"],
                    s["window"]["cpu_pct"]["broker"],
                    s["window"]["cpu_pct"].get("clinic"),
                    s["window"].get("clinic_rss_mb"),
                    s["window"]["cpu_pct_per_daemon"]["mean"],
                    s["window"]["cpu_pct"]["generators"],
                    s["window"]["machine_busy_pct"],
                ]
                for s in sizes
            ],
        )
    )
    print(
        table(
            ["size", "tick late p99", "poll span p99", "live lag p50", "p99", "subscriber p99"],
            [
                [
                    s["size"],
                    s["window"]["tick_late"]["p99_ms"],
                    s["window"]["poll_span"]["p99_ms"],
                    s["window"].get("live_lag", {}).get("p50_ms"),
                    s["window"].get("live_lag", {}).get("p99_ms"),
                    s["window"]["subscriber_lag"]["p99_ms"],
                ]
                for s in sizes
            ],
        )
    )
    out = write(args.json, "fleet", {**result, **extra})
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
