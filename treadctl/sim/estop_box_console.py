"""`treadctl sim --driver estop-box`: a simulated button box on a pty, steered from stdin."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from treadctl.sim.estop_box import SimulatedButtonBox
from treadctl.sim.stdin import serve_console, shared_command, until_signal

HELP = """commands (one per line on stdin):
  press | release            the button goes down (STOP line at once) / comes back up
  go                         the start button: a GO line (confirms a start waiting for it)
  silent on | silent off     stop / resume sending heartbeats
  garbage [N]                write N random bytes on the line now (default 16)
  garbage on | garbage off   send heartbeats with a wrong checksum
  unplug | replug            the box vanishes / comes back (new pty, link follows)
  status                     print the box's state
  help | quit"""


def apply(box: SimulatedButtonBox, line: str) -> str | None:
    """Run one console command; returns the reply, or None to quit."""
    match line.split():
        case ["press"]:
            box.press()
        case ["release"]:
            box.release()
        case ["go"]:
            box.go()
        case ["silent", "on" | "off" as state]:
            box.silent = state == "on"
        case ["garbage", "on" | "off" as state]:
            box.bad_crc = state == "on"
        case ["unplug"]:
            box.unplug()
        case ["replug"]:
            box.replug()
        case _:
            return shared_command(line, help_text=HELP, status=box.describe, device=box)
    return "ok: " + box.describe()


async def run(link: Path | None) -> int:
    with until_signal() as done:
        async with SimulatedButtonBox(link=link) as box:
            where = f" (link {link})" if link else ""
            print(f"simulated e-stop button box on {box.path}{where}", flush=True)
            print("type 'help' for press, release and fault-injection commands", flush=True)
            await serve_console(partial(apply, box), done)
    return 0
