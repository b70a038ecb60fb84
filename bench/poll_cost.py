"""The CPU of the status poll alone: treadctl's driver against the same exchanges done bare, in
one process, at the daemon's 10 Hz.

Run: uv run python bench/poll_cost.py [--seconds 10] [--rounds 3] [--json PATH]

Each variant polls its own simulated Woodway (bench/benchkit.py's ThreadedTreadmill: a thread
answers on a pty, so its work is not counted) every 100 ms with C0 and C1, and C2 at one poll
in ten (the driver reads a still elevation once a second: treadctl/drivers/elevation_reads.py);
the figure is the main thread's CPU (`time.thread_time`) over the window, per poll and as % of
a core:

- **driver**: `WoodwayDriver.read_status()` (session, turn, transport on pyserial-asyncio-fast),
  the daemon's logging configured as `treadctl run` does (INFO);
- **bare asyncio**: the same bytes with `loop.add_reader`, `os.read`/`os.write` and a future per
  answer: what any asyncio program pays per wake-up;
- **blocking pyserial**: `Serial.write`/`read` and `time.sleep`, as bench/minimal_daemon.py
  polls (the CPU baseline of bench/resources.py).

Rounds alternate the variants, so the machine's load falls on each alike.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import serial
from benchkit import ThreadedTreadmill, make_parser, ratio, table, write_json

from treadctl import logs
from treadctl.drivers.trackmaster import WoodwayDriver

PERIOD_S = 0.1
ANSWERS = ((b"\xc0", 2), (b"\xc1", 5), (b"\xc2", 5))  # request, answer length
ELEVATION_EVERY = 10  # polls


def requests(poll: int) -> tuple[tuple[bytes, int], ...]:
    """The requests of the `poll`th poll, as the driver makes them with the elevation still."""
    return ANSWERS if poll % ELEVATION_EVERY == 0 else ANSWERS[:2]


async def _paced(poll: Callable[[], Awaitable[object]], seconds: float) -> float:
    """CPU seconds of this thread per poll, polling every PERIOD_S for `seconds`."""
    loop = asyncio.get_running_loop()
    for _ in range(10):  # warm
        await poll()
    cpu0, t0 = time.thread_time(), loop.time()
    due, polls = t0, 0
    while loop.time() - t0 < seconds:
        due += PERIOD_S
        await asyncio.sleep(max(0.0, due - loop.time()))
        await poll()
        polls += 1
    return (time.thread_time() - cpu0) / polls


async def driver(path: str, seconds: float) -> float:
    d = WoodwayDriver(path, poll_interval_s=PERIOD_S)
    await d.open()
    try:
        return await _paced(d.read_status, seconds)
    finally:
        await d.close()


async def bare(path: str, seconds: float) -> float:
    port = serial.Serial(path, 4800, timeout=0)
    fd = port.fileno()
    loop = asyncio.get_running_loop()
    received = bytearray()
    waiter: list[asyncio.Future[None]] = []

    def readable() -> None:
        received.extend(os.read(fd, 1024))
        if waiter and not waiter[0].done():
            waiter[0].set_result(None)

    count = 0

    async def poll() -> None:
        nonlocal count
        count += 1
        for request, size in requests(count):
            received.clear()
            os.write(fd, request)
            while len(received) < size:
                waiter[:] = [loop.create_future()]
                await asyncio.wait_for(waiter[0], 1.0)

    loop.add_reader(fd, readable)
    try:
        return await _paced(poll, seconds)
    finally:
        loop.remove_reader(fd)
        port.close()


def blocking(path: str, seconds: float) -> float:
    port = serial.Serial(path, 4800, timeout=1.0)
    try:
        for i in range(10):
            for request, size in requests(i):
                port.write(request)
                port.read(size)
        cpu0, t0 = time.thread_time(), time.monotonic()
        due, polls = t0, 0
        while time.monotonic() - t0 < seconds:
            due += PERIOD_S
            time.sleep(max(0.0, due - time.monotonic()))
            for request, size in requests(polls):
                port.write(request)
                port.read(size)
            polls += 1
        return (time.thread_time() - cpu0) / polls
    finally:
        port.close()


def measure(name: str, seconds: float) -> float:
    sim = ThreadedTreadmill()
    try:
        if name == "blocking":
            return blocking(sim.path, seconds)
        return asyncio.run((driver if name == "driver" else bare)(sim.path, seconds))
    finally:
        sim.close()


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("INFO", stream=sys.stderr)
    names = ("driver", "bare", "blocking")
    per_poll: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            per_poll[name].append(measure(name, args.seconds))
            print(f"  round {r + 1}: {name} {per_poll[name][-1] * 1000:.3f} ms a poll", flush=True)
    median_ms = {n: statistics.median(v) * 1000 for n, v in per_poll.items()}
    rows: list[list[object]] = [
        [
            label,
            round(median_ms[n], 3),
            round(median_ms[n] / 1000 / PERIOD_S * 100, 3),  # % of a core at one poll a period
            ratio(median_ms[n], median_ms["blocking"]),
        ]
        for n, label in (
            ("driver", "treadctl's driver (asyncio)"),
            ("bare", "bare asyncio, same bytes"),
            ("blocking", "blocking pyserial (baseline)"),
        )
    ]
    print(f"status poll at 10 Hz, {args.rounds} rounds of {args.seconds:g} s, medians")
    print(table(["variant", "ms CPU a poll", "% of a core", "ratio to baseline"], rows))
    data = {"seconds": args.seconds, "rounds": args.rounds, "per_poll_ms": median_ms}
    data["all_ms"] = {n: [round(x * 1000, 4) for x in v] for n, v in per_poll.items()}
    print(f"written: {write_json(args.json, 'poll_cost', data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
