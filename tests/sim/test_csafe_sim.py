"""The simulated CSAFE console, driven by a plain pyserial script writing raw frames."""

from __future__ import annotations

import asyncio
import time

import serial

from treadctl.sim.console import apply
from treadctl.sim.physics import BeltPhysics
from treadctl.sim.pty_server import SimulatedTreadmill


def say(sim: SimulatedTreadmill, line: str) -> str:
    reply = apply(sim, line)
    assert reply is not None
    return reply


def ask(port: serial.Serial, frame: str) -> str:
    port.write(bytes.fromhex(frame))
    reply = port.read_until(b"\xf2")
    return reply.hex(" ").upper()


def script(path: str) -> list[str]:
    """A host session, byte by byte (runs in a thread: pyserial blocks)."""
    out = []
    with serial.Serial(path, 9600, timeout=1) as port:
        out.append(ask(port, "F1 80 80 F2"))  # GetStatus: Ready
        out.append(ask(port, "F1 82 82 F2"))  # GoIdle
        out.append(ask(port, "F1 85 85 F2"))  # GoInUse
        out.append(ask(port, "F1 25 03 14 00 31 03 F2"))  # SetSpeed 2.0 km/h
        time.sleep(1.5)
        out.append(ask(port, "F1 A5 A5 F2"))  # GetSpeed
        out.append(ask(port, "F1 25 03 14 00 31 04 F2"))  # bad checksum: no reply
        out.append(ask(port, "F1 80 80 F2"))  # ... the next reply says "bad"
        out.append(ask(port, "F1 25 03 C8 00 31 DF F2"))  # 20.0 km/h: accepted (the maximum)
        out.append(ask(port, "F1 25 03 D2 00 31 C5 F2"))  # 21.0 km/h: refused
        out.append(ask(port, "F1 80 80 F2"))  # ... "reject"
        out.append(ask(port, "F1 AA AA F2"))  # unsupported: status only
        out.append(ask(port, "F1 25 03 00 00 31 82 95 F2"))  # speed 0 + GoIdle
    return out


async def test_raw_frames_behave_as_the_protocol_says() -> None:
    async with SimulatedTreadmill("csafe", belt=BeltPhysics(accel_mps2=2.0)) as sim:
        replies = await asyncio.to_thread(script, sim.path)
        assert "console IDLE" in say(sim, "status")
        assert sim.belt.set_speed_kmh == 0
    assert replies[:4] == [
        "F1 81 81 F2",  # toggle 1, previous OK, Ready
        "F1 02 02 F2",  # toggle 0, Idle
        "F1 85 85 F2",  # InUse
        "F1 05 05 F2",
    ]
    assert replies[4] == "F1 85 A5 03 14 00 31 06 F2"  # 2.0 km/h in 0.1 km/h
    assert replies[5] == ""  # a frame with a bad checksum gets no reply
    assert replies[6] == "F1 25 25 F2"  # previous frame: bad (2), InUse
    assert replies[7] == "F1 85 85 F2"
    assert replies[8] == "F1 05 05 F2"
    assert replies[9] == "F1 95 95 F2"  # previous frame: rejected (1)
    assert replies[10] == "F1 05 05 F2"
    assert replies[11] == "F1 82 82 F2"  # Idle again


async def test_the_console_has_no_watchdog() -> None:
    async with SimulatedTreadmill("csafe") as sim:

        def start(path: str) -> None:
            with serial.Serial(path, 9600, timeout=1) as port:
                ask(port, "F1 85 85 F2")
                ask(port, "F1 25 03 0A 00 31 1D F2")  # 1.0 km/h

        await asyncio.to_thread(start, sim.path)
        await asyncio.sleep(1.0)  # the host is gone
        assert sim.belt.running
        assert not sim.belt.watchdog_armed
