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
"""

from __future__ import annotations

import errno
import json
import os
import sys
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


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "devices":
        return devices(args)
    if command == "failed-open":
        return failed_open(args)
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
