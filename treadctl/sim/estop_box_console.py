"""`treadctl sim --driver estop-box`: a simulated button box on a pty, steered from stdin."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

from treadctl.sim.estop_box import SimulatedButtonBox
from treadctl.sim.stdin import open_stdin

HELP = """commands (one per line on stdin):
  press | release            the button goes down (STOP line at once) / comes back up
  silent on | silent off     stop / resume sending heartbeats
  garbage [N]                write N random bytes on the line now (default 16)
  garbage on | garbage off   send heartbeats with a wrong checksum
  unplug | replug            the box vanishes / comes back (new pty, link follows)
  status                     print the box's state
  help | quit"""


def apply(box: SimulatedButtonBox, line: str) -> str | None:  # noqa: C901, PLR0911, PLR0912 - one case per command
    """Run one console command; returns the reply, or None to quit."""
    words = line.split()
    match words:
        case []:
            return ""
        case ["quit" | "exit"]:
            return None
        case ["help"]:
            return HELP
        case ["status"]:
            return box.describe()
        case ["press"]:
            box.press()
        case ["release"]:
            box.release()
        case ["silent", "on" | "off" as state]:
            box.silent = state == "on"
        case ["garbage", "on" | "off" as state]:
            box.bad_crc = state == "on"
        case ["garbage"] | ["garbage", _]:
            try:
                n = int(words[1]) if len(words) > 1 else 16
            except ValueError:
                return f"error: not a byte count: {words[1]!r}"
            return "sent " + box.send_garbage(n=max(1, min(n, 4096))).hex(" ")
        case ["unplug"]:
            box.unplug()
        case ["replug"]:
            box.replug()
        case _:
            return f"error: unknown command {line.strip()!r} (try: help)"
    return "ok: " + box.describe()


async def _read_commands(box: SimulatedButtonBox, done: asyncio.Event) -> None:
    if (reader := await open_stdin()) is None:
        return  # stdin is closed, a file or /dev/null: run until a signal
    while line := await reader.readline():
        reply = apply(box, line.decode(errors="replace"))
        if reply is None:
            break
        if reply:
            print(reply, flush=True)
    done.set()


async def run(link: Path | None) -> int:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    async with SimulatedButtonBox(link=link) as box:
        where = f" (link {link})" if link else ""
        print(f"simulated e-stop button box on {box.path}{where}", flush=True)
        print("type 'help' for press, release and fault-injection commands", flush=True)
        commands = asyncio.create_task(_read_commands(box, done), name="treadctl.sim.commands")
        try:
            await done.wait()
        finally:
            commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commands
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):
            loop.remove_signal_handler(sig)
    return 0
