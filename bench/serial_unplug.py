"""Compare asyncio serial layers on an unplug: kill socat under an open port, time the error.

Run: uv run python bench/serial_unplug.py [--trials N] [--json FILE]

For each library a socat pty pair is created, the library opens one end and waits in a
read, and socat is killed (the "unplug"). The figure is the time from the kill to the
read raising, or "hang" when nothing happens within the deadline. The baseline is a
plain non-blocking os.read on the same kind of pty, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Awaitable, Callable
from pathlib import Path

from treadctl import logs
from treadctl.transport.serial import SerialLink, SerialSettings

DEADLINE_S = 3.0


def start_socat(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    a, b = tmp / "a", tmp / "b"
    proc = subprocess.Popen(
        ["socat", f"PTY,raw,echo=0,link={a}", f"PTY,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        if a.exists() and b.exists():
            break
        time.sleep(0.01)
    return proc, a, b


async def read_until_error(
    opener: Callable[[str], Awaitable[asyncio.StreamReader]], tmp: Path
) -> tuple[float | None, str]:
    proc, a, _b = start_socat(tmp)
    reader = await opener(str(a))
    read_task = asyncio.create_task(reader.read(100))
    await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    proc.kill()
    proc.wait()
    try:
        data = await asyncio.wait_for(read_task, DEADLINE_S)
    except TimeoutError:
        return None, "hang"
    except Exception as exc:  # noqa: BLE001 - the point is to see what surfaces
        return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - t0, f"EOF ({data!r})"


async def open_fast(port: str) -> asyncio.StreamReader:
    import serial_asyncio_fast  # noqa: PLC0415

    reader, _writer = await serial_asyncio_fast.open_serial_connection(url=port, baudrate=4800)
    return reader


async def open_serialx(port: str) -> asyncio.StreamReader:
    import serialx  # noqa: PLC0415

    reader, _writer = await serialx.open_serial_connection(port, baudrate=4800)
    return reader


async def open_raw(port: str) -> asyncio.StreamReader:
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()

    def ready() -> None:
        try:
            data = os.read(fd, 100)
        except OSError as exc:
            loop.remove_reader(fd)
            reader.set_exception(exc)
            return
        if not data:
            loop.remove_reader(fd)
            reader.feed_eof()
        else:
            reader.feed_data(data)

    loop.add_reader(fd, ready)
    return reader


async def close_stalled(lib: str) -> float | None:
    """Close a port whose peer stopped reading, with unsent bytes queued; None = still hanging."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    payload = b"x" * 200_000
    try:
        if lib == "treadctl SerialLink":
            link = SerialLink(SerialSettings(path, 4800))
            await link.open()
            link.write(payload)
            t0 = time.perf_counter()
            await asyncio.wait_for(link.close(), DEADLINE_S)
            return time.perf_counter() - t0
        if lib == "pyserial-asyncio-fast":
            import serial_asyncio_fast  # noqa: PLC0415

            _r, writer = await serial_asyncio_fast.open_serial_connection(url=path, baudrate=4800)
        else:
            import serialx  # noqa: PLC0415

            _r, writer = await serialx.open_serial_connection(path, baudrate=4800)
        writer.write(payload)
        t0 = time.perf_counter()
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), DEADLINE_S)
        except TimeoutError:
            writer.transport.abort()
            return None
        return time.perf_counter() - t0
    finally:
        os.close(master)
        os.close(slave)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("ERROR")
    libs = {
        "baseline os.read": open_raw,
        "pyserial-asyncio-fast": open_fast,
        "serialx": open_serialx,
    }
    results: dict[str, dict[str, object]] = {}
    for name, opener in libs.items():
        times: list[float] = []
        outcomes: set[str] = set()
        for _ in range(args.trials):
            with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
                elapsed, outcome = await read_until_error(opener, Path(tmp))
                outcomes.add(outcome)
                if elapsed is not None:
                    times.append(elapsed)
        results[name] = {
            "trials": args.trials,
            "errors_within_deadline": len(times),
            "median_ms": round(statistics.median(times) * 1e3, 3) if times else None,
            "max_ms": round(max(times) * 1e3, 3) if times else None,
            "outcomes": sorted(outcomes),
        }
    base = results["baseline os.read"]["median_ms"]
    print(f"{'library':24} {'ok/trials':>9} {'median ms':>10} {'max ms':>8} {'x base':>7}  outcome")
    for name, r in results.items():
        med = r["median_ms"]
        ratio = f"{med / base:.2f}" if isinstance(med, float) and isinstance(base, float) else "-"
        r["ratio_to_baseline"] = ratio
        print(
            f"{name:24} {r['errors_within_deadline']}/{r['trials']:<7} {med!s:>10} "
            f"{r['max_ms']!s:>8} {ratio:>7}  {'; '.join(r['outcomes'])}"  # type: ignore[arg-type]
        )
    print(f"\nclose with 200 kB unsent, peer not reading (deadline {DEADLINE_S} s)")
    closes: dict[str, str] = {}
    for lib in ("pyserial-asyncio-fast", "serialx", "treadctl SerialLink"):
        with contextlib.suppress(Exception):
            took = await close_stalled(lib)
            closes[lib] = "hang" if took is None else f"{took * 1e3:.1f} ms"
        print(f"  {lib:24} {closes.get(lib, 'error')}")
    if args.json:
        args.json.write_text(json.dumps({"unplug": results, "stalled_close": closes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
