"""What the daemon does between reading the e-stop from its broker socket and writing the stop
byte: every Python frame and C call on that path, and the memory allocated on it.

Run: uv run python bench/estop_path.py [--trials 5] [--json PATH]

In process, the parts the daemon runs (not a subprocess, so that the profile can be hooked in):
the MQTT bridge and the controller on a simulated Woodway (a real pty, ThreadedTreadmill), a real
mosquitto. The bridge's socket reader (treadctl/mqtt/socket_reads.py) is wrapped so that each
wake-up runs under `sys.setprofile` and `tracemalloc`; the wake-up that writes the stop byte is
kept, cut at the `os.write` of the byte. Counted: Python frames entered (`call`), C functions
called (`c_call`), by package; the blocks and bytes allocated since the wake-up began and
still alive at the write, and the traced peak. The profile slows that wake-up; the latency is
bench/estop_mqtt.py's.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

from benchkit import (
    ThreadedTreadmill,
    User,
    bench_controller,
    cancel,
    make_parser,
    mosquitto,
    workdir,
)

from treadctl import logs
from treadctl.config.models import Settings
from treadctl.core import commands as c
from treadctl.core.device import WalkDirection
from treadctl.drivers.trackmaster import WoodwayDriver
from treadctl.mqtt import socket_reads
from treadctl.mqtt.bridge import MqttBridge
from treadctl.sim.brokers import HOST


def where(code_file: str, name: str) -> str:
    for part in ("treadctl/", "paho/", "aiomqtt/", "serial_asyncio_fast/", "serial/", "structlog/"):
        at = code_file.rfind(part)
        if at >= 0:
            return code_file[at:].removesuffix(".py") + ":" + name
    return Path(code_file).name.removesuffix(".py") + ":" + name


class PathProfile:
    """The events of one wake-up of the socket reader, up to the stop byte's os.write."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.cut: int | None = None
        self.alloc: dict[str, Any] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.cut is not None:
            return
        if event == "call":
            self.events.append(("call", where(frame.f_code.co_filename, frame.f_code.co_name)))
        elif event == "c_call":
            name = (
                f"{getattr(arg, '__module__', None) or type(arg.__self__).__name__}.{arg.__name__}"
            )
            self.events.append(("c_call", name))
            if name == "posix.write":
                self.cut = len(self.events)
                # the profiler's own records are not the path's
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(inclusive=False, filename_pattern=__file__)]
                )
                stats = snap.statistics("filename")
                self.alloc = {
                    "blocks_alive": sum(s.count for s in stats),
                    "bytes_alive": sum(s.size for s in stats),
                    "alloc_by_file": {
                        where(str(s.traceback[0].filename), ""): s.count for s in stats[:12]
                    },
                }


def wrap_reader(bridge: MqttBridge, kept: list[PathProfile]) -> None:
    client = bridge._link.client  # noqa: SLF001 - the bench hooks into the connected client
    assert client is not None
    mqtt = client._client  # noqa: SLF001
    sock = mqtt.socket()
    loop = asyncio.get_running_loop()
    fd = sock.fileno()  # type: ignore[union-attr]

    def profiled() -> None:
        profile = PathProfile()
        tracemalloc.start(1)
        sys.setprofile(profile)
        try:
            socket_reads._read(client, mqtt, sock)  # type: ignore[arg-type]  # noqa: SLF001
        finally:
            sys.setprofile(None)
            tracemalloc.stop()
        if profile.cut is not None:
            kept.append(profile)

    loop.remove_reader(fd)
    loop.add_reader(fd, profiled)


def summarise(profile: PathProfile) -> dict[str, Any]:
    events = profile.events[: profile.cut]
    calls = [n for kind, n in events if kind == "call"]
    ccalls = [n for kind, n in events if kind == "c_call"]

    def package(name: str) -> str:
        return (
            name.split(":", maxsplit=1)[0].rsplit("/", 1)[0]
            if "/" in name
            else name.split(":", maxsplit=1)[0]
        )

    return {
        "python_frames": len(calls),
        "c_calls": len(ccalls),
        "frames_by_package": dict(collections.Counter(package(n) for n in calls).most_common()),
        "c_calls_by_name": dict(collections.Counter(ccalls).most_common()),
        "python_path": calls,
        **profile.alloc,
    }


async def run(trials: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with workdir() as wd, mosquitto(wd) as port:
        sim = ThreadedTreadmill()
        settings = Settings(
            device={"id": "pathbench", "driver": "woodway", "port": sim.path},
            mqtt={"host": HOST, "port": port, "protocol": "5"},
            telemetry={"rate_hz": 10.0},
        )
        async with WoodwayDriver(sim.path, poll_interval_s=0.1) as driver:
            controller = bench_controller(driver)
            ctl = asyncio.create_task(controller.run(), name="bench.controller")
            await controller.ready.wait()
            bridge = MqttBridge(settings, controller, programs=[], model="woodway", version="b")
            task = asyncio.create_task(bridge.run(), name="bench.bridge")
            await asyncio.wait_for(bridge.connected.wait(), 10)
            user = await asyncio.to_thread(User, port)
            kept: list[PathProfile] = []
            wrap_reader(bridge, kept)
            for _ in range(trials):
                result = await controller.execute(c.ManualSet(1.0, WalkDirection.BACKWARD))
                if not result.ok:
                    raise RuntimeError(result.message)
                await asyncio.sleep(0.5)
                before = sim.stop_count()
                user.publish(user.topic("pathbench", "estop"))
                await asyncio.to_thread(sim.wait_stop, before)
                sim.skip_coast_down()
                await asyncio.sleep(0.3)
                await controller.execute(c.Reset())
            out = [summarise(p) for p in kept]
            user.close()
            await cancel(task, ctl)
        sim.close()
    return out


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logs.configure("WARNING")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    started = time.strftime("%H:%M:%S")
    profiles = asyncio.run(run(args.trials))
    first = profiles[0]
    print(f"e-stop path, broker socket read -> os.write of the stop byte ({started})")
    print(
        f"wake-ups profiled: {len(profiles)}; Python frames: "
        f"{[p['python_frames'] for p in profiles]}; C calls: {[p['c_calls'] for p in profiles]}; "
        f"blocks alive at the write: {[p['blocks_alive'] for p in profiles]}"
    )
    print("frames by package:", json.dumps(first["frames_by_package"]))
    print("C calls:", json.dumps(first["c_calls_by_name"]))
    print("blocks alive at the write, by file:", json.dumps(first["alloc_by_file"]))
    print("the path (first wake-up):")
    for n, name in enumerate(first["python_path"], 1):
        print(f"  {n:3} {name}")
    if args.json:
        args.json.write_text(json.dumps({"started": started, "profiles": profiles}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
