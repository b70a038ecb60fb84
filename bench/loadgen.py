"""Load generators: treadmills on the broker without a daemon, a serial line or a controller.

Each publishes what a daemon running a program publishes, built with the daemon's own payload
code (Snapshot.state_dict / telemetry_dict, the events' as_dict, the responses'
response_payload): the retained `online` (last will: `offline`), the retained state on every
change, `session_started`, a `phase_started` and a new state every 10 s, and telemetry at the
rate asked with `ts` stamped just before the publish. Each sample carries a new heart rate
(60-209 bpm, cycling), so every sample changes a dashboard tile and the value names the sample.

Each also answers commands as a daemon does (`cmd/NAME` -> `response/NAME`, the request's `id`
echoed): `estop` on any payload latches (state `estop`, the `estop` and `session_finished`
events, the belt at 0) until a `reset`; `set`/`start` are refused with `estop_latched` meanwhile
and start a session from idle; `stop` ends one; `heartbeat`, `pause`, `resume`, `skip` are
answered; an unknown name gets `unknown_command`, a payload that is not a JSON object
`invalid_json`.

Used in process by bench/dashboard_fleet.py, and as a process of its own by bench/fleet.py:
    python bench/loadgen.py PORT --count N [--first K] [--rate 10] [--stats PATH]
        [--samples PATH]
which prints `ready` once every treadmill is on the broker, sends telemetry until SIGTERM, and
then writes its figures (samples sent, how late each left its schedule, commands answered) as
JSON to --stats, and every sample's `ts`, device and heart rate to --samples.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from benchkit import pct
from paho.mqtt.enums import CallbackAPIVersion

from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.events import (
    EStopLatched,
    PhaseStarted,
    ResetDone,
    SessionFinished,
    SessionStarted,
)
from treadctl.core.safety import EStopCause
from treadctl.core.session import Ending, SessionSummary
from treadctl.core.state import Event, Mode, Motion, Snapshot
from treadctl.mqtt.requests import response_payload
from treadctl.sim.brokers import HOST

PREFIX = "treadctl"
PHASE_S = 10.0
SPEED_KMH = 1.2
INTERLOCK_S = 3.0
BPM_LOW, BPM_SPAN = 60, 150  # 15 s of distinct values at 10 Hz: a sample is named unambiguously
STILL = Motion(0.0, WalkDirection.BACKWARD, BeltDirection.REVERSE, 0.0)
MOVING = Motion(SPEED_KMH, WalkDirection.BACKWARD, BeltDirection.REVERSE, 0.0)


@dataclass
class Treadmill:
    """One daemon's part on the broker: its own connection, its retained availability and state,
    events, telemetry, and its answers to commands (from the connection's network thread)."""

    device: str
    client: paho.Client
    snap: Snapshot
    session_started_at: float
    prefix: str = PREFIX
    sent: list[tuple[float, int]] = field(default_factory=list)  # (ts, heart rate) of each sample
    answered: dict[str, int] = field(default_factory=dict)  # commands by name
    seq: int = 0
    phase: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topic(self, kind: str) -> str:
        return f"{self.prefix}/{self.device}/{kind}"

    def publish_state(self) -> None:
        body = self.snap.state_dict() | {"selected_program": None}
        self.client.publish(self.topic("state"), json.dumps(body), qos=1, retain=True)

    def publish_event(self, event: Event) -> None:
        payload = json.dumps(event.as_dict(), default=str)
        self.client.publish(self.topic("event"), payload, qos=1)

    def next_phase(self, now: float) -> None:
        with self.lock:
            if self.snap.mode != Mode.RUNNING:
                return
            self.phase += 1
            label = f"backward bout {self.phase}"
            self.snap = replace(self.snap, phase=label, phase_index=self.phase, ts=now)
            self.publish_event(
                PhaseStarted(
                    ts=now,
                    session_id=str(self.snap.session_id),
                    index=self.phase,
                    label=label,
                    walk=WalkDirection.BACKWARD,
                    belt=BeltDirection.REVERSE,
                    speed_kmh=SPEED_KMH,
                    incline_pct=0.0,
                    duration_s=PHASE_S,
                )
            )
            self.publish_state()

    def publish_telemetry(self) -> None:
        with self.lock:
            self.seq += 1
            bpm = BPM_LOW + self.seq % BPM_SPAN
            now = time.time()
            if self.snap.mode == Mode.RUNNING:
                elapsed = now - self.session_started_at
                self.snap = replace(
                    self.snap,
                    ts=now,
                    heart_rate_bpm=bpm,
                    elapsed_s=elapsed,
                    distance_m=elapsed * SPEED_KMH / 3.6,
                    phase_remaining_s=max(0.0, PHASE_S - elapsed % PHASE_S),
                )
            else:
                self.snap = replace(self.snap, ts=now, heart_rate_bpm=bpm)
            body = self.snap.telemetry_dict() | {"ts": round(now, 3)}
            self.client.publish(self.topic("telemetry"), json.dumps(body), qos=0)
            self.sent.append((round(now, 3), bpm))

    # --- commands, as a daemon answers them (docs/mqtt.md) ------------------------------------

    def on_command(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        name = message.topic.rsplit("/", 1)[-1]
        payload = bytes(message.payload)
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        rid = body.get("id") if isinstance(body, dict) else None
        if name == "estop":  # on any payload, as the daemon
            ok, code, text = True, "", self.estop()
        elif not isinstance(body, dict):
            ok, code, text = False, "invalid_json", "the payload is not a JSON object"
        else:
            ok, code, text = self.command(name)
        with self.lock:
            self.answered[name] = self.answered.get(name, 0) + 1
        answer = response_payload(rid, ok=ok, code=code, message=text)
        self.client.publish(self.topic(f"response/{name}"), answer, qos=1)

    def command(self, name: str) -> tuple[bool, str, str]:
        """(ok, error code, message) of a command other than the e-stop."""
        with self.lock:
            now, mode = time.time(), self.snap.mode
            if name in {"set", "start"}:
                if mode == Mode.ESTOP:
                    return False, "estop_latched", "emergency stop latched: reset first"
                if mode == Mode.IDLE:
                    self.start_session(now)
            elif name == "reset":
                if mode != Mode.ESTOP:
                    return True, "", "nothing to reset"
                self.snap = replace(self.snap, mode=Mode.IDLE, ts=now)
                self.publish_event(ResetDone(ts=now, session_id=None, interlock_s=INTERLOCK_S))
                self.publish_state()
            elif name == "stop":
                if mode != Mode.RUNNING:
                    return True, "", "nothing to stop"
                self._end(now, Mode.IDLE, "stopped", "command", "stopped")
            elif name not in {"heartbeat", "pause", "resume", "skip"}:
                return False, "unknown_command", f"no command {name!r}"
        return True, "", ""

    def estop(self) -> str:
        with self.lock:
            now = time.time()
            if self.snap.mode != Mode.ESTOP:
                self.publish_event(
                    EStopLatched(
                        ts=now,
                        session_id=self.snap.session_id,
                        cause=EStopCause.COMMAND,
                        detail="emergency stop (MQTT)",
                    )
                )
                self._end(now, Mode.ESTOP, "estop", "command", "emergency stop (MQTT)")
        return "emergency stop: belt stopped"

    def start_session(self, now: float) -> None:
        self.session_started_at = now
        self.phase = 0
        self.snap = _running(now, self.device)
        self.publish_event(
            SessionStarted(
                ts=now,
                session_id=str(self.snap.session_id),
                program="backward-intervals",
                parameters={},
                planned_s=1800.0,
                person=self.snap.person,
            )
        )
        self.publish_state()

    def _end(self, now: float, mode: Mode, ended: Ending, cause: str, detail: str) -> None:
        snap = self.snap
        if snap.session_id is not None:
            elapsed = round(now - self.session_started_at, 1)
            summary = SessionSummary(elapsed, round(snap.distance_m, 1), elapsed, None, None)
            self.publish_event(
                SessionFinished(
                    ts=now,
                    session_id=snap.session_id,
                    program=str(snap.program),
                    person=snap.person,
                    ended=ended,
                    cause=cause,
                    detail=detail,
                    summary=summary,
                )
            )
        self.snap = replace(
            snap,
            ts=now,
            mode=mode,
            program=None,
            phase=None,
            phase_index=None,
            phase_remaining_s=None,
            session_id=None,
            target=STILL,
            actual=STILL,
            distance_m=0.0,
            elapsed_s=0.0,
            person=None,
        )
        self.publish_state()


def _running(now: float, device: str) -> Snapshot:
    return Snapshot(
        ts=now,
        mode=Mode.RUNNING,
        program="backward-intervals",
        phase="backward bout 0",
        phase_index=0,
        phase_remaining_s=PHASE_S,
        session_id=f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}",
        target=MOVING,
        actual=MOVING,
        fault=None,
        distance_m=0.0,
        elapsed_s=0.0,
        heart_rate_bpm=None,
        person=f"p-{device[-4:]}",
    )


def _connect(port: int, device: str, prefix: str) -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{device}-{secrets.token_hex(3)}",
        protocol=paho.MQTTv5,
    )
    client.will_set(f"{prefix}/{device}/availability", "offline", qos=1, retain=True)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(HOST, port)
    client.loop_start()
    if not connected.wait(10):
        raise TimeoutError(f"{device}: no connection to the broker")
    return client


class Load:
    """N treadmills; one thread sends every telemetry sample on its own schedule (each treadmill
    at `rate` Hz, their phases spread over the period) while `telemetry` is set."""

    def __init__(
        self,
        port: int,
        n: int,
        rate_hz: float,
        *,
        names: list[str] | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.period = 1.0 / rate_hz
        self.telemetry = threading.Event()
        self.late: list[float] = []  # how late each sample left its schedule, s
        self._stop = threading.Event()
        self.treadmills: list[Treadmill] = []
        self._thread = threading.Thread(target=self._run, name="bench.load", daemon=True)
        for device in names or [f"treadmill-{i + 1:02d}" for i in range(n)]:
            now = time.time()
            client = _connect(port, device, prefix)
            t = Treadmill(device, client, _running(now, device), now, prefix)
            self.treadmills.append(t)
            client.on_message = t.on_command
            client.subscribe(t.topic("cmd/+"), qos=1)
            client.publish(t.topic("availability"), "online", qos=1, retain=True)
            with t.lock:
                t.start_session(now)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        n = len(self.treadmills)
        due = [(start + i * self.period / n, i) for i in range(n)]
        phases = [start + PHASE_S + i * PHASE_S / n for i in range(n)]
        heapq.heapify(due)
        while not self._stop.is_set():
            at, i = heapq.heappop(due)
            delay = at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            now = time.monotonic()
            t = self.treadmills[i]
            if now >= phases[i]:
                phases[i] += PHASE_S
                t.next_phase(time.time())
            if self.telemetry.is_set():
                self.late.append(now - at)
                t.publish_telemetry()
            nxt = at + self.period
            heapq.heappush(due, (nxt if nxt > now else now + self.period, i))  # skip, never burst

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for t in self.treadmills:
            with contextlib.suppress(Exception):
                t.client.publish(t.topic("availability"), "offline", qos=1, retain=True)
                t.client.disconnect()
                t.client.loop_stop()


# --- as a process of its own ------------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(1e3 * pct(values, 50), 2),
        "p99_ms": round(1e3 * pct(values, 99), 2),
        "max_ms": round(1e3 * max(values), 2),
    }


def figures(load: Load, seconds: float) -> dict[str, Any]:
    answered: dict[str, int] = {}
    for t in load.treadmills:
        for name, count in t.answered.items():
            answered[name] = answered.get(name, 0) + count
    samples = sum(len(t.sent) for t in load.treadmills)
    return {
        "treadmills": len(load.treadmills),
        "seconds": round(seconds, 1),
        "samples": samples,
        "rate_hz_per_treadmill": round(samples / len(load.treadmills) / seconds, 2)
        if load.treadmills and seconds
        else None,
        "late": _ms(load.late),
        "answered": answered,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int, help=f"the broker's, on {HOST}")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="index of the first treadmill")
    parser.add_argument("--name", default="gen", help="device ids NAME-000, NAME-001, ...")
    parser.add_argument("--rate", type=float, default=10.0, help="telemetry, Hz (10)")
    parser.add_argument("--prefix", default=PREFIX)
    parser.add_argument("--stats", type=Path, help="figures, JSON, written at the end")
    parser.add_argument("--samples", type=Path, help="every sample: `ts device bpm` lines")
    args = parser.parse_args()
    if args.count < 1 or args.first < 0 or not 0 < args.rate <= 50:
        parser.error("--count >= 1, --first >= 0, 0 < --rate <= 50")
    # many connections' network threads share this process: the daemon's GIL switch interval
    sys.setswitchinterval(0.001)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    names = [f"{args.name}-{i:03d}" for i in range(args.first, args.first + args.count)]
    load = Load(args.port, args.count, args.rate, names=names, prefix=args.prefix)
    load.telemetry.set()
    load.start()
    start = time.monotonic()
    print("ready", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        seconds = time.monotonic() - start
        load.close()
        if args.stats:
            args.stats.write_text(json.dumps(figures(load, seconds), indent=2) + "\n")
        if args.samples:
            lines = [f"{ts} {t.device} {bpm}\n" for t in load.treadmills for ts, bpm in t.sent]
            args.samples.write_text("".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
