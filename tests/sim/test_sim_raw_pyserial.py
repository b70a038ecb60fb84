"""`treadctl sim` as a separate process, driven by a plain pyserial script writing raw opcodes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from sim.console_process import command, sim_console


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    link = tmp_path / "treadmill"
    with sim_console("trackmaster", link, "simulated trackmaster treadmill on /dev/pts/") as proc:
        yield proc, link


def ask(port: serial.Serial, request: str, answer_len: int) -> str:
    port.write(bytes.fromhex(request))
    return port.read(answer_len).hex(" ")


def test_raw_opcodes_behave_as_the_protocol_says(
    sim_process: tuple[subprocess.Popen[str], Path],
) -> None:
    _, link = sim_process
    with serial.Serial(str(link), 4800, timeout=1) as port:
        assert ask(port, "c0", 2) == "d0 31"  # stopped
        assert ask(port, "a0", 1) == "b0"  # start, watchdog armed
        assert ask(port, "c0", 2) == "d0 32"
        assert ask(port, "a3 30 30 32 30", 1) == "b3"  # 2.0 mph
        assert ask(port, "c3", 5) == "d3 30 30 32 30"  # set speed read back
        assert ask(port, "a4 30 30 35 30", 1) == "b4"  # 5 %
        assert ask(port, "a4 30 30 34 33", 1) == "be"  # 4.3 %: out of range
        assert ask(port, "a3 33 30 32 30", 1) == "be"  # no reverse digit here: 302.0 mph
        assert ask(port, "ff", 1) == "bf"  # unknown opcode
        assert ask(port, "a3 30 30 32 30", 1) == "b3"
        deadline = time.monotonic() + 5
        while ask(port, "c1", 5) != "d1 30 30 32 30":  # actual speed reaches 2.0 mph
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert ask(port, "aa", 1) == "ba"  # auto stop
        assert ask(port, "c0", 2) == "d0 31"


def test_watchdog_fires_when_the_script_goes_quiet(
    sim_process: tuple[subprocess.Popen[str], Path],
) -> None:
    _, link = sim_process
    with serial.Serial(str(link), 4800, timeout=1) as port:
        assert ask(port, "a0", 1) == "b0"
        assert ask(port, "a3 30 30 31 30", 1) == "b3"
        time.sleep(0.8)  # longer than the 0.5 s Communication-Disconnect-Stop
        assert ask(port, "c0", 2) == "d0 31"


def test_console_fault_commands(sim_process: tuple[subprocess.Popen[str], Path]) -> None:
    proc, link = sim_process
    with serial.Serial(str(link), 4800, timeout=0.3) as port:
        assert "KEY PULLED" in command(proc, "key pull")
        assert ask(port, "a0", 1) == "be"  # no start without the key
        assert "key in" in command(proc, "key insert")
        assert "ok" in command(proc, "silent on")
        assert ask(port, "c0", 2) == ""
        command(proc, "silent off")
        assert command(proc, "garbage 3").startswith("sent ")
        assert len(port.read(3)) == 3
        assert command(proc, "nonsense").startswith("error: unknown command")
        assert "UNPLUGGED" in command(proc, "unplug")
        with pytest.raises(serial.SerialException):
            port.write(b"\xc0")
            port.read(2)
    assert not link.exists()
