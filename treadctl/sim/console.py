"""`treadctl sim`: a simulated treadmill on a pty, steered by commands on stdin."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

from treadctl.core import units
from treadctl.sim.delta_vfd import DeltaVfdPersonality
from treadctl.sim.physics import StopCause
from treadctl.sim.pty_server import SimulatedTreadmill
from treadctl.sim.stdin import serve_console, shared_command, until_signal

HELP = """commands (one per line on stdin):
  key pull | key insert      pull or insert the safety key
  silent on | silent off     stop / resume answering (bytes are still received)
  late SECONDS               answer this late (0: on time)
  garbage [N]                write N random bytes on the line now (default 16)
  garbage on | garbage off   answer every command with random bytes
  unplug | replug            the adapter vanishes / comes back (new pty, link follows)
  slip KMH | slip off        the belt cannot go faster than KMH (a speed mismatch)
  param 09-02 N              delta-vfd: comm-loss treatment (0 warn+run, 1 ramp stop,
                             2 coast stop, 3 keep running: the factory default)
  param 09-03 SECONDS        delta-vfd: comm-loss time-out (0 disables it)
  status                     print the belt state
  help | quit"""


def describe(sim: SimulatedTreadmill) -> str:
    b = sim.belt
    b.advance(sim.clock())
    direction = "reverse" if b.speed_kmh < 0 else "forward"
    speed = abs(b.speed_kmh)
    parts = [
        "running" if b.running else "stopped",
        f"{direction} {speed:.2f} km/h ({units.kmh_to_mph(speed):.1f} mph)",
        f"set {b.set_speed_kmh:+.2f} km/h",
        f"incline {b.incline_pct:.1f} %",
        "watchdog armed" if b.watchdog_armed else "watchdog off",
        "key in" if b.key_present else "KEY PULLED",
    ]
    if b.stop_cause is not None:
        parts.append(f"stopped by {b.stop_cause}")
        if b.stop_cause is StopCause.WATCHDOG and b.watchdog_silence_s is not None:
            parts[-1] += f" after {b.watchdog_silence_s:.2f} s of silence"

    if extra := sim.protocol.describe():
        parts.append(extra)
    if not sim.plugged:
        parts.append("UNPLUGGED")
    return ", ".join(parts)


def _param(sim: SimulatedTreadmill, name: str, value: str) -> str | None:
    """Set a drive parameter as from its keypad; an error message, or None when done."""
    drive = sim.protocol
    if not isinstance(drive, DeltaVfdPersonality):
        return "error: parameters exist on the delta-vfd simulator only"
    try:
        number = float(value)
    except ValueError:
        return f"error: not a number: {value!r}"
    if name == "09-02" and number in (0, 1, 2, 3):
        drive.set_comm_loss(treatment=int(number))
    elif name == "09-03" and 0 <= number <= 60:
        drive.set_comm_loss(timeout_s=number)
    else:
        return "error: param 09-02 0|1|2|3 or param 09-03 0-60"
    return None


def apply(sim: SimulatedTreadmill, line: str) -> str | None:  # noqa: C901, PLR0912 - one case per command
    """Run one console command; returns the reply, or None to quit."""
    match line.split():
        case ["key", "pull"]:
            sim.pull_key()
        case ["key", "insert"]:
            sim.insert_key()
        case ["silent", "on" | "off" as state]:
            sim.faults.silent = state == "on"
        case ["late", seconds]:
            try:
                sim.faults.late_s = max(0.0, float(seconds))
            except ValueError:
                return f"error: not a number of seconds: {seconds!r}"
        case ["garbage", "on" | "off" as state]:
            sim.faults.garbage_answers = state == "on"
        case ["slip", "off"]:
            sim.belt.slip_limit_kmh = None
        case ["slip", limit]:
            try:
                sim.belt.slip_limit_kmh = max(0.0, float(limit))
            except ValueError:
                return f"error: not a speed: {limit!r}"
        case ["param", name, value]:
            if (error := _param(sim, name, value)) is not None:
                return error
        case ["unplug"]:
            sim.unplug()
        case ["replug"]:
            sim.replug()
            return f"plugged in on {sim.path}"
        case _:
            return shared_command(line, help_text=HELP, status=partial(describe, sim), device=sim)
    return "ok: " + describe(sim)


async def _report_changes(sim: SimulatedTreadmill, interval_s: float = 0.2) -> None:
    last = ""
    while True:
        b = sim.belt
        now = (
            b.running,
            round(b.speed_kmh, 1),
            round(b.incline_pct, 1),
            b.stop_cause,
            b.key_present,
            sim.plugged,
        )
        line = repr(now)
        if line != last:
            print("belt: " + describe(sim), flush=True)
            last = line
        await asyncio.sleep(interval_s)


async def run(personality: str, link: Path | None) -> int:
    with until_signal() as done:
        async with SimulatedTreadmill(personality, link=link) as sim:
            where = f" (link {link})" if link else ""
            print(f"simulated {personality} treadmill on {sim.path}{where}", flush=True)
            print("type 'help' for fault-injection commands", flush=True)
            await serve_console(partial(apply, sim), done, _report_changes(sim))
    return 0
