"""`treadctl sim --driver estop-box` as a separate process, read with plain pyserial."""

from __future__ import annotations

import time
from pathlib import Path

import serial

from sim.console_process import command, sim_console
from treadctl.estop.protocol import LineError, parse


def lines_for(port: serial.Serial, seconds: float) -> list[bytes]:
    port.reset_input_buffer()
    deadline = time.monotonic() + seconds
    out = []
    while time.monotonic() < deadline:
        line = port.readline()
        if line:
            out.append(line.rstrip(b"\n"))
    return out


def test_press_release_garbage_and_silence_on_the_wire(tmp_path: Path) -> None:
    link = tmp_path / "box"
    with (
        sim_console("estop-box", link, "simulated e-stop button box on /dev/pts/") as proc,
        serial.Serial(str(link), 115200, timeout=0.05) as port,
    ):
        released = [parse(x) for x in lines_for(port, 0.35)]
        assert len(released) >= 3  # every 0.1 s
        assert not any(x.pressed for x in released)
        assert "PRESSED" in command(proc, "press")
        pressed = [parse(x) for x in lines_for(port, 0.25)]
        assert any(x.pressed for x in pressed)
        command(proc, "release")
        command(proc, "garbage on")
        bad = lines_for(port, 0.25)
        assert bad
        for raw in bad:
            try:
                parse(raw)
            except LineError:
                continue
            raise AssertionError(f"{raw!r} parsed despite 'garbage on'")
        command(proc, "garbage off")
        command(proc, "silent on")
        time.sleep(0.15)
        assert lines_for(port, 0.3) == []
