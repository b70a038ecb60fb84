"""Catch-up: how long the clinic service takes to take in the sessions a daemon recorded while
the service was down (issue 18, "nothing lost").

Run: uv run python bench/catchup.py [--sessions 100] [--minutes 30] [--postgres-url URL]
                                    [--json PATH]

A mosquitto broker on a free port; a daemon's session store (SQLite) filled with `--sessions`
ended sessions of `--minutes` each at the default 5 Hz telemetry (30 min: 9000 samples, with
ramps, a backward phase on an incline, heart rate), written in the store's own schema and rows
(treadctl/store/rows.py; the samples with one executemany), as the daemon would have recorded
them; `treadctl run` (sim driver) as a subprocess on that store, with no clinic service on the
broker, so nothing is sent. Then `treadctl clinic` starts (SQLite in the work directory, or
`--database URL` with `--postgres-url`), and the time runs from its retained `online` (stamped
by an observer on the broker) until the daemon's store shows every session delivered (the
latest `delivered` the daemon wrote on an ack); the clinic's API must then list them all.

Baseline, in the same run, with the daemon idle beside it: the same documents (the daemon's
own bytes, built beforehand from the store) published by a minimal paho-mqtt client, one at a
time at QoS 1 (each PUBACK awaited), to a minimal subscriber process that does json.loads, one
INSERT of the raw JSON into an SQLite table (WAL, committed before the ack, as the clinic's)
and publishes the ack; timed from the first publish to the last ack. That is the floor of
moving and storing the bytes; the daemon's reading and encoding of each record from its store
is timed apart (in this process) since the baseline starts from the encoded bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from benchkit import (
    User,
    cpu_s,
    machine,
    make_parser,
    mosquitto,
    python_env,
    ratio,
    ready,
    stop_process,
    table,
    treadctl_exe,
    wait,
    workdir,
    write_json,
)
from paho.mqtt.enums import CallbackAPIVersion

from treadctl.sim.brokers import HOST, free_port
from treadctl.store import rows
from treadctl.store.delivery import record_payload, undelivered_ids
from treadctl.store.model import SAMPLE_COLUMNS, EventRecord, PhaseRecord, SessionRecord
from treadctl.store.schema import open_readonly, open_writer

PREFIX, BASE_PREFIX = "treadctl", "baseline"
RATE_HZ = 5.0  # the default telemetry rate: one sample per tick recorded
T0 = 1_795_511_700.0  # the first session's start; one session a day after it
INSERT_SAMPLE = (
    f"INSERT INTO samples (session_id, {', '.join(SAMPLE_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(SAMPLE_COLUMNS) + 1))})"
)
# (label, walk, target km/h, incline %, share of the session)
PLAN = (
    ("warm-up", "forward", 2.5, 0.0, 0.1),
    ("backward, level", "backward", 1.5, 0.0, 0.4),
    ("backward, 5 %", "backward", 1.4, 5.0, 0.4),
    ("cool-down", "forward", 2.0, 0.0, 0.1),
)


# --- the daemon's store, filled -----------------------------------------------------------------


def _samples(session_id: str, started: float, minutes: float, rng: random.Random) -> list[Any]:
    """One tick per 1/RATE_HZ, as the recorder writes them: wall `ts` and `elapsed_s` with a
    scheduler's jitter and full float precision, speeds at the driver's 0.1 km/h, the
    distance integrated unrounded, heart rate following the work. Belt still for 5 s before a
    change of direction."""
    out: list[Any] = []
    dt, total = 1 / RATE_HZ, minutes * 60.0
    bounds, at = [], 0.0
    for *_, share in PLAN:
        at += share * total
        bounds.append(at)
    speed = incline = distance = 0.0
    hr = 70.0 + rng.uniform(-5, 5)
    for tick in range(round(total * RATE_HZ)):
        t = tick * dt
        index = next(i for i, b in enumerate(bounds) if t < b or i == len(bounds) - 1)
        _, walk, target, slope, _ = PLAN[index]
        turning = index and PLAN[index - 1][1] != walk and t - bounds[index - 1] < 5.0
        goal = 0.0 if turning else target
        speed = min(goal, speed + 0.1) if speed < goal else max(goal, speed - 0.1)
        speed = round(speed, 1)
        incline += max(-0.5, min(0.5, slope - incline))
        elapsed = t + rng.uniform(0.0, 0.004)
        distance += speed / 3.6 * dt
        hr += (70 + 14 * speed + 2 * incline + 6 * (walk == "backward") - hr) * 0.04
        hr += rng.uniform(-0.8, 0.8)
        out.append(
            (
                session_id,
                started + elapsed,
                elapsed,
                speed,
                "reverse" if walk == "backward" else "forward",
                walk,
                incline,
                goal,
                distance,
                round(hr),
                index,
                "running",
            )
        )
    return out


def _session_id(started: float, n: int) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(started)) + f"-{n:04x}"


def _record_one(conn: sqlite3.Connection, device: str, minutes: float) -> str:
    """One ended session through the store's own rows (the summary worked out as the writer
    does), one transaction."""
    started = T0
    session_id = _session_id(started, 0)
    samples = _samples(session_id, started, minutes, random.Random(18))
    ended = samples[-1][1]
    conn.execute("BEGIN")
    record = SessionRecord(
        session_id,
        device,
        "sim",
        "backward-uphill",
        {"comfortable_backward_kmh": 1.5},
        3,
        4,
        minutes * 60.0,
        started,
        person="p-0042",
    )
    rows.apply(conn, rows.SessionStarted(record))
    event = {"program": "backward-uphill", "person": "p-0042"}
    rows.apply(conn, rows.Logged(session_id, EventRecord(started, "session_started", event)))
    at = started
    for index, (label, walk, target, slope, share) in enumerate(PLAN):
        belt = "reverse" if walk == "backward" else "forward"
        planned = share * minutes * 60.0
        phase = PhaseRecord(index, label, walk, belt, target, slope, planned, at)
        rows.apply(conn, rows.PhaseStarted(session_id, phase))
        details = {"index": index, "phase": label}
        rows.apply(conn, rows.Logged(session_id, EventRecord(at, "phase_started", details)))
        at += planned
    conn.executemany(INSERT_SAMPLE, samples)
    done = EventRecord(ended, "session_finished", {"how": "finished"})
    rows.apply(conn, rows.Logged(session_id, done))
    rows.apply(conn, rows.SessionEnded(session_id, ended, "finished", None, None, None))
    conn.execute("COMMIT")
    return session_id


SHIFTED = frozenset({"started", "ended", "ts"})  # the times moved to the copy's day


def _copy_rows(
    conn: sqlite3.Connection, table: str, key: str, ids: tuple[str, str], by: float
) -> None:
    """The source's rows of `table` again for the target, their times moved `by` seconds."""
    columns = [str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")]
    exprs = ["?" if c == key else f"{c} + ?" if c in SHIFTED else c for c in columns]
    params = [ids[1] if c == key else by for c in columns if c == key or c in SHIFTED]
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)}"
        f" FROM {table} WHERE {key} = ?",
        (*params, ids[0]),
    )


def fill_store(path: Path, device: str, sessions: int, minutes: float) -> list[str]:
    """`sessions` ended sessions of `device`, a day apart; their ids, oldest first. The first
    is written through the store's rows, the others are its copies (SQL in the same schema,
    times moved), a transaction each: the fastest honest way to get the volume."""
    conn = open_writer(path)
    try:
        first = _record_one(conn, device, minutes)
        ids = [first]
        for n in range(1, sessions):
            by = 86400.0 * n
            session_id = _session_id(T0 + by, n)
            conn.execute("BEGIN")
            _copy_rows(conn, "sessions", "id", (first, session_id), by)
            for table in ("phases", "events", "samples"):
                _copy_rows(conn, table, "session_id", (first, session_id), by)
            conn.execute("COMMIT")
            ids.append(session_id)
    finally:
        conn.close()
    return ids


def payloads(path: Path, ids: list[str]) -> tuple[list[bytes], float]:
    """The records as the daemon sends them, and its seconds per record to read and encode."""
    out = []
    with contextlib.closing(open_readonly(path)) as conn:
        t0 = time.perf_counter()
        for session_id in ids:
            payload = record_payload(conn, session_id)
            assert payload is not None
            out.append(payload)
        return out, (time.perf_counter() - t0) / len(ids)


def delivered(path: Path, device: str) -> tuple[int, float | None]:
    """How many of the device's sessions are still undelivered, and the latest delivery."""
    with contextlib.closing(open_readonly(path)) as conn:
        left = len(undelivered_ids(conn, device))
        latest = conn.execute("SELECT MAX(delivered) FROM sessions").fetchone()[0]
    return left, None if latest is None else float(latest)


# --- the observer and the baseline's publisher --------------------------------------------------


@dataclass
class Observer:
    """A paho-mqtt client stamping (wall clock) what it is subscribed to; it can publish."""

    port: int
    topics: list[str]
    seen: list[tuple[float, str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-{secrets.token_hex(3)}"
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in self.topics])
        self.client.connect(HOST, self.port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("bench observer could not subscribe")

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        now = time.time()
        with self._cond:
            self.seen.append((now, message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def first(self, topic: str, payload: bytes, timeout: float) -> float:
        """When `payload` first came on `topic`."""

        def found() -> float | None:
            return next((t for t, top, p in self.seen if top == topic and p == payload), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise TimeoutError(f"no {payload!r} on {topic} within {timeout} s")
            at = found()
            assert at is not None
            return at

    def times(self, topic_end: str) -> list[float]:
        with self._cond:
            return [t for t, top, _ in self.seen if top.endswith(topic_end)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def baseline_run(port: int, device: str, documents: list[bytes], db: Path) -> dict[str, Any]:
    """The minimal subscriber (a process of its own), fed by a minimal publisher here."""
    base = f"{BASE_PREFIX}/{device}"
    sub = subprocess.Popen(
        [sys.executable, __file__, "--subscriber", HOST, str(port), BASE_PREFIX, str(db)],
        env=python_env(),
    )
    acks = Observer(port, [f"{base}/record/ack", f"{BASE_PREFIX}/subscriber"])
    try:
        acks.first(f"{BASE_PREFIX}/subscriber", b"online", 30)
        cpu0 = cpu_s(sub.pid)
        t0 = time.time()
        for payload in documents:
            acks.client.publish(f"{base}/record", payload, qos=1).wait_for_publish(60)
        wait(lambda: len(acks.times("/record/ack")) >= len(documents), 120, "baseline: acks")
        last = max(acks.times("/record/ack"))
        cpu = cpu_s(sub.pid) - cpu0
    finally:
        acks.close()
        stop_process(sub, 5)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    if stored != len(documents):
        raise RuntimeError(f"baseline: {stored} of {len(documents)} stored")
    return {"seconds": round(last - t0, 3), "subscriber_cpu_s": round(cpu, 2)}


def subscriber(host: str, port: int, prefix: str, db: str) -> int:
    """The baseline's store: json.loads, one INSERT of the raw JSON (committed), the ack."""
    conn = sqlite3.connect(db, isolation_level=None)  # autocommit: each INSERT commits
    conn.execute("PRAGMA journal_mode = WAL")  # as the clinic's SQLite
    conn.execute("CREATE TABLE records (id TEXT PRIMARY KEY, device TEXT, document TEXT)")
    client = paho.Client(CallbackAPIVersion.VERSION2)

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe(f"{prefix}/+/record", qos=1)
        c.publish(f"{prefix}/subscriber", b"online", qos=1)

    def on_message(c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        device = message.topic.split("/")[-2]
        session_id = json.loads(message.payload)["session"]["id"]
        conn.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
            (session_id, device, message.payload.decode()),
        )
        ack = json.dumps({"session": session_id}).encode()
        c.publish(f"{prefix}/{device}/record/ack", ack, qos=1)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port)
    client.loop_forever()
    return 0


# --- treadctl ----------------------------------------------------------------------------------


def _config(path: Path, body: str, port: int) -> Path:
    path.write_text(body + f'[mqtt]\nhost = "{HOST}"\nport = {port}\nprotocol = "5"\n')
    return path


@contextlib.contextmanager
def spawned(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = python_env()
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    with log.open("ab") as err:
        proc = subprocess.Popen([treadctl_exe(), *args], env=env, cwd=log.parent, stderr=err)
    try:
        yield proc
    finally:
        stop_process(proc, 20)


BENCH_USER, BENCH_PASSWORD = "bench", "the catch-up bench's password"


def add_bench_account(database: str) -> None:
    """The account the bench reads the API with (the service asks for a login)."""
    from treadctl.clinic import accounts  # noqa: PLC0415 - the clinic extra
    from treadctl.clinic.database import open_database  # noqa: PLC0415

    db = open_database(database)
    try:
        with db.session() as session:
            accounts.add_account(
                session, BENCH_USER, BENCH_PASSWORD, admin=False, now=datetime.now(UTC)
            )
    finally:
        db.close()


def api_sessions(port: int, device: str) -> tuple[int, float]:
    """How many of the device's sessions the clinic's API lists, and how long that took."""
    login = urllib.request.Request(
        f"http://{HOST}:{port}/api/login",
        data=json.dumps({"username": BENCH_USER, "password": BENCH_PASSWORD}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(login, timeout=60) as answer:
        cookie = answer.headers.get("Set-Cookie", "").split(";", 1)[0]
    t0 = time.perf_counter()
    url = f"http://{HOST}:{port}/api/sessions?device={device}"
    listing = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(listing, timeout=120) as answer:
        body = json.load(answer)
    if not isinstance(body, list):
        raise TypeError(f"the clinic's API: not a list: {body}")
    return len(body), time.perf_counter() - t0


def treadctl_run(
    wd: Path,
    port: int,
    device: str,
    n: int,
    *,
    database: str,
    beside: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The daemon up on its store, `beside()` run while it idles (the baseline), then the clinic
    service started and the catch-up timed."""
    store = wd / f"{device}.db"
    daemon_cfg = _config(
        wd / "daemon.toml",
        f'[device]\nid = "{device}"\ndriver = "sim"\n[storage]\npath = "{store}"\n',
        port,
    )
    api_port = free_port()
    clinic_cfg = _config(wd / "clinic.toml", f"[clinic]\nport = {api_port}\n", port)
    availability = f"{PREFIX}/clinic/availability"
    observer = Observer(port, [availability, f"{PREFIX}/{device}/record/ack"])
    user = User(port, PREFIX)
    try:
        with spawned(["run", "--config", str(daemon_cfg)], wd / "daemon.log") as daemon:
            ready(user, device)
            base = beside()
            if delivered(store, device)[0] != n:
                raise RuntimeError("sessions delivered before the clinic service started")
            daemon_cpu0 = cpu_s(daemon.pid)
            spawn = time.time()
            add_bench_account(database)
            clinic_args = ["clinic", "--config", str(clinic_cfg), "--database", database]
            with spawned(clinic_args, wd / "clinic.log") as clinic:
                online = observer.first(availability, b"online", 60)
                clinic_cpu0 = cpu_s(clinic.pid)
                wait(lambda: delivered(store, device)[0] == 0, 60 + 5 * n, "all delivered")
                _, last = delivered(store, device)
                daemon_cpu = cpu_s(daemon.pid) - daemon_cpu0
                clinic_cpu = cpu_s(clinic.pid) - clinic_cpu0
                acks = observer.times("/record/ack")
                listed, list_s = api_sessions(api_port, device)
        if listed != n:
            raise RuntimeError(f"the clinic's API lists {listed} of {n} sessions")
    finally:
        user.close()
        observer.close()
    assert last is not None
    return {
        "baseline": base,
        "treadctl": {
            "seconds": round(last - online, 3),
            "clinic_start_to_online_s": round(online - spawn, 3),
            "online_to_first_ack_s": round(min(acks) - online, 3),
            "acks_seen": len(acks),
            "daemon_cpu_s": round(daemon_cpu, 2),
            "clinic_cpu_s": round(clinic_cpu, 2),
            "api_list_s": round(list_s, 3),
        },
    }


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--postgres-url", help="run the clinic service on this PostgreSQL")
    parser.add_argument("--json", type=Path, help="the full figures (default bench/results/)")
    parser.add_argument("--subscriber", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        host, port, prefix, db = args.subscriber
        return subscriber(host, int(port), prefix, db)
    n = args.sessions
    if n < 1 or args.minutes <= 0:
        parser.error("--sessions must be 1 or more, --minutes above 0")
    device = f"catchup-{secrets.token_hex(2)}"  # its own sessions on a reused PostgreSQL
    with workdir() as wd, mosquitto(wd) as port:
        t0 = time.perf_counter()
        ids = fill_store(wd / f"{device}.db", device, n, args.minutes)
        fill_s = time.perf_counter() - t0
        documents, encode_s = payloads(wd / f"{device}.db", ids)
        print(f"  store filled in {fill_s:.1f} s; records built", file=sys.stderr)
        database = args.postgres_url or f"sqlite:///{wd / 'clinic.db'}"
        r = treadctl_run(
            wd,
            port,
            device,
            n,
            database=database,
            beside=lambda: baseline_run(port, device, documents, wd / "baseline.db"),
        )
    mb = sum(len(d) for d in documents) / 1e6
    tc, base = r["treadctl"], r["baseline"]
    figures = {
        "sessions": n,
        "minutes": args.minutes,
        "samples_per_session": round(args.minutes * 60 * RATE_HZ),
        "mb": round(mb, 1),
        "record_mb_median": round(statistics.median(len(d) for d in documents) / 1e6, 2),
        "database": "postgresql" if args.postgres_url else "sqlite",
        "treadctl": tc,
        "baseline": base,
        "daemon_encode_s_per_record": round(encode_s, 4),
        "ratio": ratio(tc["seconds"], base["seconds"]),
        # steadier than the wall clock on a loaded machine: the storing side's CPU per record
        "cpu_ratio": ratio(tc["clinic_cpu_s"], base["subscriber_cpu_s"]),
    }
    rows_out = [
        [name, s["seconds"], round(n / s["seconds"], 2), round(mb / s["seconds"], 1)]
        for name, s in (("baseline: paho -> json.loads + INSERT -> ack", base), ("treadctl", tc))
    ]
    print(
        f"catch-up of {n} sessions ({args.minutes:g} min at {RATE_HZ:g} Hz, {mb:.1f} MB, "
        f"clinic on {figures['database']})"
    )
    print(table(["online -> all acked", "s", "sessions/s", "MB/s"], rows_out))
    print(
        f"ratio to baseline: {figures['ratio']}x; clinic start -> online "
        f"{tc['clinic_start_to_online_s']} s, online -> first ack {tc['online_to_first_ack_s']} s"
    )
    print(
        f"CPU during the catch-up: daemon {tc['daemon_cpu_s']} s, clinic {tc['clinic_cpu_s']} s, "
        f"baseline subscriber {base['subscriber_cpu_s']} s (clinic / subscriber: "
        f"{figures['cpu_ratio']}x); the daemon's reading and encoding of a record: "
        f"{encode_s * 1e3:.0f} ms; the API listing them: {tc['api_list_s']} s"
    )
    line = {
        "bench": "catchup",
        "sessions": n,
        "mb": figures["mb"],
        "treadctl_s": tc["seconds"],
        "baseline_s": base["seconds"],
        "ratio": figures["ratio"],
        "cpu_ratio": figures["cpu_ratio"],
        "sessions_per_s": round(n / tc["seconds"], 2),
        "loadavg": machine()["loadavg"],
    }
    print(json.dumps(line))
    out = write_json(args.json, "catchup", figures)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
