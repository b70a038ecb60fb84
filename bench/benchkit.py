"""Shared pieces of the benchmarks: a simulated Woodway on a pty served by a thread that
timestamps what it reads, a mosquitto broker on a free port (treadctl/sim/brokers.py, as the
tests start one), the daemon as a real subprocess or the controller in process, a paho-mqtt
user, /proc readings, the command line, and the table/JSON output.

The treadmill lives in the benchmark's own process so that the publish and the arrival of the
stop byte are stamped on one clock (time.monotonic, CLOCK_MONOTONIC, shared by all processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from treadctl import logs
from treadctl.control.controller import Controller
from treadctl.core.safety import SafetyRules
from treadctl.core.timeline import DeviceProfile
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.drivers.trackmaster_codec import Dialect, Op, Request, RequestDecoder
from treadctl.sim.brokers import HOST, find_mosquitto, mosquitto_broker
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.trackmaster import TrackmasterPersonality

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- the treadmill ---------------------------------------------------------------------------


class Pty:
    """A raw pty pair: the program measured opens `path`, the bench reads and writes `master`."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.slave)
        with contextlib.suppress(OSError):
            os.close(self.master)


class ThreadedTreadmill(Pty):
    """The Woodway personality on a pty. A thread blocks in os.read and stamps each request on
    arrival, so the figures do not wait for any event loop."""

    def __init__(self, accel_mps2: float = 2.0) -> None:
        super().__init__()
        self.belt = BeltPhysics(accel_mps2=accel_mps2)
        self.protocol = TrackmasterPersonality(Dialect.WOODWAY, self.belt)
        self.decoder = RequestDecoder(Dialect.WOODWAY)
        self.lock = threading.Lock()
        self.stops: list[float] = []  # arrival of every read holding a stop request
        self.requests: list[tuple[float, Request]] = []
        self._cond = threading.Condition(self.lock)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="bench.treadmill")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            now = time.monotonic()
            with self._cond:
                requests = [r for r in self.decoder.feed(data) if isinstance(r, Request)]
                if any(r.op == Op.STOP for r in requests):
                    self.stops.append(now)
                    self._cond.notify_all()
                self.requests += [(now, r) for r in requests]
                answer = self.protocol.feed(data, now)
            if answer:
                os.write(self.master, answer)

    def stop_count(self) -> int:
        with self.lock:
            return len(self.stops)

    def wait_stop(self, after: int, timeout: float = 5.0) -> float:
        """The arrival time of stop read number `after` (0-based)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.stops) > after, timeout):
                raise TimeoutError(f"no stop byte on {self.path} within {timeout} s")
            return self.stops[after]

    def speed_kmh(self) -> float:
        with self.lock:
            self.belt.advance(time.monotonic())
            return self.belt.speed_kmh

    def skip_coast_down(self) -> None:
        """The belt at rest at once, so that the next trial need not wait for it."""
        with self.lock:
            self.belt.speed_kmh = 0.0


# --- the broker --------------------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto(workdir: Path, *, nodelay: bool = True) -> Iterator[int]:
    """A mosquitto broker on a free loopback port; its port. `nodelay`: `set_tcp_nodelay true`
    (treadctl/sim/brokers.py says why), off with --mosquitto-default."""
    if find_mosquitto() is None:
        sys.exit("bench: mosquitto is needed (apt-get install mosquitto)")
    with mosquitto_broker(workdir, nodelay=nodelay) as broker:
        yield broker.port


# --- the controller in process --------------------------------------------------------------------


def bench_controller(driver: WoodwayDriver) -> Controller:
    """A controller on `driver` without the e-stop interlock, so that trials follow each other."""
    caps = WoodwayDriver.capabilities
    rules = SafetyRules(
        speed_resolution_kmh=caps.speed_resolution_kmh, max_accel_mps2=0.15, estop_interlock_s=0.0
    )
    return Controller(driver, profile=DeviceProfile("woodway", caps), rules=rules, programs={})


async def cancel(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the daemon --------------------------------------------------------------------------------


@dataclass
class DaemonSpec:
    device: str
    port: int  # the broker's
    serial: str
    workdir: Path
    rate_hz: float = 10.0
    programs: Path | None = None
    extra: str = ""

    def config(self) -> Path:
        path = self.workdir / f"{self.device}.toml"
        programs = f'[programs]\ndirectory = "{self.programs}"\n' if self.programs else ""
        path.write_text(
            'log_level = "WARNING"\n'
            f'[device]\nid = "{self.device}"\ndriver = "woodway"\nport = "{self.serial}"\n'
            # The shortest countdown and interlock the configuration allows keep trials short.
            "[safety]\nreversal_countdown_s = 0\nestop_interlock_s = 3\n"
            f'[mqtt]\nhost = "{HOST}"\nport = {self.port}\nprotocol = "5"\n'
            f"[telemetry]\nrate_hz = {self.rate_hz}\n"
            f'[storage]\npath = "{self.workdir / (self.device + ".db")}"\n' + programs + self.extra
        )
        return path


PYCACHE = RESULTS / "pycache"


def python_env(*, bytecode: bool = True) -> dict[str, str]:
    """The environment of the processes measured. With `bytecode`, compiled modules are cached
    (in bench/results/pycache) as in an installed package; without, nothing is written and only
    the bytecode already next to the sources is used (the interpreter's standard library; a venv
    made by `uv sync` has none), as under PYTHONDONTWRITEBYTECODE=1."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_daemon(
    spec: DaemonSpec,
    notify: Path | None = None,
    *,
    bytecode: bool = True,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`extra_env`: e.g. PYTHONPATH naming another checkout's sources, to run that version."""
    env = python_env(bytecode=bytecode) | {"TREADCTL_LOG_LEVEL": "WARNING"} | (extra_env or {})
    env.pop("WATCHDOG_USEC", None)
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
    else:
        env.pop("NOTIFY_SOCKET", None)
    with (spec.workdir / f"{spec.device}.log").open("ab") as log:
        return subprocess.Popen(
            [treadctl_exe(), "run", "--config", str(spec.config())],
            env=env,
            cwd=spec.workdir,
            stderr=log,
        )


def treadctl_exe() -> str:
    """The `treadctl` console script of this environment (what systemd's ExecStart runs)."""
    exe = Path(sys.executable).parent / "treadctl"
    return str(exe) if exe.exists() else "treadctl"


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the user ----------------------------------------------------------------------------------


class User:
    """A paho-mqtt client (its own network thread) that sends commands and collects answers,
    events and telemetry."""

    def __init__(self, port: int, prefix: str = "treadctl") -> None:
        self.prefix = prefix
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-{secrets.token_hex(3)}",
            protocol=paho.MQTTv5,
        )
        self.client.on_message = self._on_message
        self._cond = threading.Condition()
        self.messages: list[tuple[float, str, bytes]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.client.connect(HOST, port)
        self.client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("bench client could not connect")
        # The measuring client sends without Nagle's delay, for both paths alike.
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.subscribe(f"{prefix}/+/response/+", qos=1)
        self.client.subscribe(f"{prefix}/+/event", qos=1)
        self.client.subscribe(f"{prefix}/+/state", qos=1)

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        with self._cond:
            self.messages.append((now, message.topic, bytes(message.payload)))
            if "/response/" in message.topic:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    answer = json.loads(message.payload)
                    self.responses[str(answer["id"])] = answer
            self._cond.notify_all()

    def topic(self, device: str, name: str) -> str:
        return f"{self.prefix}/{device}/cmd/{name}"

    def publish(self, topic: str, payload: bytes = b"{}") -> float:
        """Publishes; returns the time just before the call."""
        t0 = time.monotonic()
        self.client.publish(topic, payload, qos=1)
        return t0

    def request(
        self, device: str, name: str, body: dict[str, Any] | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        rid = secrets.token_hex(4)
        payload = json.dumps({**(body or {}), "id": rid}).encode()
        self.client.publish(self.topic(device, name), payload, qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self.responses, timeout):
                raise TimeoutError(f"no answer to {name} from {device}")
            return self.responses.pop(rid)

    def until_ok(
        self, device: str, name: str, body: dict[str, Any] | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        """Repeats a command (e.g. a start during the interlock) until it is accepted."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.request(device, name, body)
            if answer.get("ok"):
                return answer
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} on {device} refused: {answer}")
            time.sleep(0.1)

    def events(self, device: str, kind: str) -> list[tuple[float, dict[str, Any]]]:
        topic = f"{self.prefix}/{device}/event"
        with self._cond:
            raw = [(t, p) for t, top, p in self.messages if top == topic]
        out = [(t, json.loads(p)) for t, p in raw]
        return [(t, e) for t, e in out if e.get("type") == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


# --- sessions and trials ------------------------------------------------------------------------


def ready(user: User, device: str, timeout: float = 60) -> None:
    """The daemon answers commands (subscribed and serving)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if user.request(device, "heartbeat", timeout=1).get("ok"):
                return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def running(user: User, device: str, sim: ThreadedTreadmill) -> None:
    """A manual backward session, the belt moving (starts are refused during the interlock)."""
    user.until_ok(device, "set", {"speed_kmh": 1.0, "walk": "backward"})
    wait(lambda: sim.speed_kmh() <= -0.4, 20, f"{device}: belt moving")


def still_and_reset(user: User, device: str, sim: ThreadedTreadmill) -> None:
    wait(lambda: abs(sim.speed_kmh()) < 0.01, 20, f"{device}: belt still")
    user.until_ok(device, "reset")


def baseline_trial(user: User, topic: str, sim: ThreadedTreadmill) -> float:
    before = sim.stop_count()
    t0 = user.publish(topic)
    return sim.wait_stop(before) - t0


def baseline_up(user: User, topic: str, sim: ThreadedTreadmill) -> bool:
    try:
        before = sim.stop_count()
        user.publish(topic)
        sim.wait_stop(before, timeout=0.5)
    except TimeoutError:
        return False
    return True


# --- /proc --------------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    """VmRSS from /proc/PID/status, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return 0.0


# --- command line and figures ---------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [v * 1e3 for v in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


def quantiles_ms(
    seconds: list[float], points: tuple[int, ...] = (10, 25, 50, 75, 90)
) -> dict[str, float]:
    """The distribution's shape, in ms: `p10_ms` … for each percentage in `points`."""
    ms = [v * 1e3 for v in seconds]
    return {f"p{q}_ms": round(pct(ms, q), 3) for q in points}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """The bench's command line, its docstring as the help."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_mosquitto_default(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mosquitto-default",
        action="store_true",
        help="leave mosquitto's set_tcp_nodelay at its default (false)",
    )


Trials = Callable[[int], Awaitable[list[float]]]  # the latencies (s) of so many trials


async def in_process_estop_bench(
    doc: str | None,
    *,
    title: str,
    width: int,
    baseline: tuple[str, Trials],
    measured: tuple[str, str, Trials],
) -> int:
    """The in-process e-stop benches' command line (--trials, --json), table and JSON.

    `title` may name `{trials}`; `baseline` is (label, trials); `measured` is (its JSON key,
    label, trials). The baseline runs first, then the path measured."""
    parser = make_parser(doc)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("ERROR")
    (base_label, base_trials), (key, label, trials) = baseline, measured
    base = summary_ms(await base_trials(args.trials))
    figures = summary_ms(await trials(args.trials))
    print(title.format(trials=args.trials))
    print(f"{'path':{width}} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in ((base_label, base), (label, figures)):
        print(f"{name:{width}} {s['p50_ms']:>8} {s['p95_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}")
    # a key is left out where the baseline is 0
    ratios = {k: round(figures[k] / base[k], 2) for k in ("p50_ms", "p99_ms") if base[k]}
    print(f"ratio to baseline: p50 {ratios.get('p50_ms')}x, p99 {ratios.get('p99_ms')}x")
    if args.json:
        args.json.write_text(
            json.dumps({"baseline": base, key: figures, "ratio": ratios}, indent=2)
        )
    return 0


def machine() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path | None, name: str, data: dict[str, Any]) -> Path:
    target = path or RESULTS / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {"bench": name, "machine": machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
    target.write_text(json.dumps(data, indent=2) + "\n")
    return target


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="treadctl-bench-") as tmp:
        yield Path(tmp)


@dataclass
class Fleet:
    """Daemons and their treadmills, closed together."""

    sims: list[ThreadedTreadmill] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sim in self.sims:
            sim.close()
