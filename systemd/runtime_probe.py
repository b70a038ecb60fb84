# ruff: noqa: INP001 - a script copied into the container, not part of a package
"""Helpers for systemd/runtime-check.sh, run inside its container by the system's python3.

Standard library only (the container's /usr/bin/python3, not the project's venv). Each command
prints one line saying what it found and exits 0 when that is what the check expects, 1 if not.

  devices CGROUP --allowed PATH... --denied PATH...
      Opens every PATH from where this process starts (must all open), then moves this process
      into CGROUP (a cgroup v2 directory, e.g. a service's) and opens them again: the allowed
      ones must open, the denied ones must fail with EPERM, which is what a cgroup's device
      program answers. Same process, user and capabilities before and after: only the cgroup
      differs, so a refusal can come only from that cgroup's device policy.
  failed-open PORT
      Reads `journalctl -o cat` of the service on stdin and finds its error line for a serial
      port it could not open: JSON, level error, a LinkLost naming PORT with "Permission
      denied", and no frame carrying local variables.
  free-port
      Prints a TCP port on 127.0.0.1 that nothing listens on (the kernel's choice).
  http METHOD URL [JSON] [--save FILE]
      One request (the clinic service's web API); prints the status, content type and the
      start of the body (the whole body to FILE); exits 0 on a 2xx answer.
  sqlite FILE QUERY
      Prints the rows of QUERY on the SQLite FILE, opened read-only (never created or changed).
  record DEVICE SESSION PERSON
      Prints a treadctl-session document (docs/mqtt.md, the record) of a 60-second backward
      walk, as a daemon would publish it on `{prefix}/DEVICE/record`.
  extensions PID PACKAGE...
      Which compiled extension modules (.so under site-packages) process PID has mapped, by
      package; exits 0 when every PACKAGE has at least one.
  sandbox-imports
      Run by the project's venv python under the clinic unit's sandbox (not the system's):
      psycopg's binary implementation loads and libpq attempts a connection (refused: no
      server), SQLAlchemy's compiled extensions load. What the service on SQLite never imports.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sqlite3
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path


def try_open(path: str) -> str:
    """'ok', or the errno name the open failed with."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    os.close(fd)
    return "ok"


def devices(args: list[str]) -> int:
    cgroup = Path(args[0])
    split = args.index("--denied")
    allowed, denied = args[2:split], args[split + 1 :]
    assert args[1] == "--allowed"
    assert allowed
    assert denied
    paths = allowed + denied
    before = {p: try_open(p) for p in paths}
    (cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n")
    joined = "0::/" + cgroup.relative_to("/sys/fs/cgroup").as_posix()
    # The cgroup v2 line (a hybrid host's v1 hierarchies are listed too).
    mine = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x[:3] == "0::")
    after = {p: try_open(p) for p in paths}
    ok = (
        all(before[p] == "ok" for p in paths)
        and mine == joined
        and all(after[p] == "ok" for p in allowed)
        and all(after[p] == "EPERM" for p in denied)
    )
    outside = ", ".join(f"{p} {r}" for p, r in before.items())
    inside = ", ".join(f"{p} {r}" for p, r in after.items())
    print(f"outside the service's cgroup: {outside}; inside ({mine}): {inside}")
    return 0 if ok else 1


def failed_open(args: list[str]) -> int:
    port = args[0]
    found = []
    for raw in sys.stdin:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or line.get("level") != "error":
            continue
        if any(
            exc.get("exc_type") == "LinkLost" and port in exc.get("exc_value", "")
            for exc in line.get("exception", [])
        ):
            found.append(line)
    if not found:
        print(f"no error line with a LinkLost for {port}")
        return 1
    line = found[0]
    value = line["exception"][0]["exc_value"]
    frames = [f for exc in line["exception"] for f in exc.get("frames", [])]
    with_locals = [f["name"] for f in frames if "locals" in f]
    print(
        f"{line['event']!r}: {value[:90]}...; {len(frames)} frames, {len(with_locals)} with locals"
    )
    return 0 if "Permission denied" in value and frames and not with_locals else 1


def free_port(_args: list[str]) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])
    return 0


# The dashboard's login for `http`, kept between the probe's runs (`login` writes it).
LOGIN_FILE = Path("/run/treadctl-probe-login.json")


def login(args: list[str]) -> int:
    """`login URL USER PASSWORD`: POST /api/login; keeps the cookie and CSRF token for `http`."""
    url, user, password = args
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - our URL
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            cookie = answer.headers.get("Set-Cookie", "").split(";", 1)[0]
            csrf = json.loads(answer.read())["csrf"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"login {url}: {exc}")
        return 1
    LOGIN_FILE.write_text(json.dumps({"cookie": cookie, "csrf": csrf}))
    LOGIN_FILE.chmod(0o600)
    print(f"logged in as {user}: cookie {cookie.split('=', 1)[0]}, CSRF token kept")
    return 0 if cookie else 1


def http(args: list[str]) -> int:
    save = None
    if "--save" in args:
        at = args.index("--save")
        save, args = args[at + 1], args[:at] + args[at + 2 :]
    method, url = args[0], args[1]
    data = args[2].encode() if len(args) > 2 else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our URL
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if LOGIN_FILE.exists():
        kept = json.loads(LOGIN_FILE.read_text())
        request.add_header("Cookie", kept["cookie"])
        request.add_header("X-CSRF-Token", kept["csrf"])
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            status, kind, body = answer.status, answer.headers.get_content_type(), answer.read()
    except urllib.error.HTTPError as exc:
        status, kind, body = exc.code, exc.headers.get_content_type(), exc.read()
    except OSError as exc:
        print(f"{method} {url}: {exc}")
        return 1
    if save:
        Path(save).write_bytes(body)
    text = body.decode("utf-8", "replace")
    start = text[:100] if kind == "application/json" else f"{len(body)} bytes"
    print(f"HTTP {status} {kind}: {start}")
    return 0 if 200 <= status < 300 else 1


def sqlite(args: list[str]) -> int:
    path, query = Path(args[0]), args[1]
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute(query).fetchall()
    print("; ".join(" ".join(str(v) for v in row) for row in rows))
    return 0 if rows else 1


def record(args: list[str]) -> int:
    device, session_id, person = args
    duration_s, speed_kmh = 60, 0.8
    t0 = datetime.now(UTC).timestamp() - 3600
    ended = t0 + duration_s

    def utc(ts: float) -> str:
        text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
        return text.removesuffix("+00:00") + "Z"

    samples = [
        {
            "ts": t0 + i,
            "elapsed_s": float(i),
            "speed_kmh": speed_kmh if i else 0.0,
            "belt": "reverse",
            "walk": "backward",
            "incline_pct": 0.0,
            "target_kmh": speed_kmh,
            "distance_m": round(speed_kmh / 3.6 * i, 3),
            "heart_rate_bpm": None,
            "phase_index": 0,
            "mode": "running",
        }
        for i in range(duration_s + 1)
    ]
    session = {
        "id": session_id,
        "device_id": device,
        "driver": "sim",
        "program": "alghadir2019-knee-oa",
        "parameters": {"comfortable_backward_kmh": speed_kmh},
        "plan_sessions_per_week": 3,
        "plan_weeks": 6,
        "planned_s": float(duration_s),
        "started": t0,
        "ended": ended,
        "ended_how": "finished",
        "end_cause": None,
        "end_detail": None,
        "summary": None,
        "person": person,
        "started_utc": utc(t0),
        "ended_utc": utc(ended),
    }
    phase = {
        "index": 0,
        "label": "retro walking",
        "walk": "backward",
        "belt": "reverse",
        "speed_kmh": speed_kmh,
        "incline_pct": 0.0,
        "planned_s": float(duration_s),
        "started": t0,
        "ended": ended,
    }
    document = {
        "format": "treadctl-session",
        "version": 1,
        "session": session,
        "phases": [phase],
        "events": [{"ts": t0, "type": "session_started", "details": {}}],
        "samples": samples,
    }
    print(json.dumps(document, separators=(",", ":")))
    return 0


def extensions(args: list[str]) -> int:
    pid, wanted = args[0], args[1:]
    found: dict[str, set[str]] = {}
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1]
        if "/site-packages/" in path and ".so" in path:
            package = path.split("/site-packages/")[1].split("/")[0]
            found.setdefault(package, set()).add(path.rsplit("/", 1)[-1])
    listed = ", ".join(f"{p} {len(found[p])}" for p in sorted(found))
    print(f"{sum(len(v) for v in found.values())} compiled modules/libraries mapped: {listed}")
    return 0 if all(found.get(p) for p in wanted) else 1


def sandbox_imports(_args: list[str]) -> int:
    import psycopg  # noqa: PLC0415 - the venv's, under the unit's sandbox
    from sqlalchemy.util import has_compiled_ext  # noqa: PLC0415

    with socket.socket() as sock:  # a port nothing listens on: libpq's connect is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        psycopg.connect(f"host=127.0.0.1 port={port} dbname=x user=x connect_timeout=5")
    except psycopg.OperationalError as exc:
        refused = "Connection refused" in str(exc)
    else:
        refused = False
    impl, libpq = psycopg.pq.__impl__, psycopg.pq.version()
    compiled = has_compiled_ext()  # type: ignore[no-untyped-call]
    print(
        f"uid {os.getuid()}, psycopg {impl} (libpq {libpq}), connect to a closed port: "
        f"{'refused' if refused else 'NOT refused'}; SQLAlchemy compiled extensions: {compiled}"
    )
    return 0 if impl == "binary" and refused and compiled else 1


COMMANDS = {
    "devices": devices,
    "failed-open": failed_open,
    "free-port": free_port,
    "http": http,
    "login": login,
    "sqlite": sqlite,
    "record": record,
    "extensions": extensions,
    "sandbox-imports": sandbox_imports,
}


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if command in COMMANDS:
        return COMMANDS[command](args)
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
