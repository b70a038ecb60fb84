"""`treadctl sim --driver estop-box` as a separate process, read with plain pyserial."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import serial

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


def command(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()
    return proc.stdout.readline()


def test_press_release_garbage_and_silence_on_the_wire(tmp_path: Path) -> None:
    link = tmp_path / "box"
    with subprocess.Popen(
        [sys.executable, "-m", "treadctl", "sim", "--driver", "estop-box", "--link", str(link)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert "simulated e-stop button box on /dev/pts/" in proc.stdout.readline()
        proc.stdout.readline()
        with serial.Serial(str(link), 115200, timeout=0.05) as port:
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
        proc.terminate()
        assert proc.wait(timeout=5) == 0
