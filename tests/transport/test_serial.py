"""The serial transport on a socat pty pair (or tests/ptyrelay.py): killing it is an unplug."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import serial

from treadctl.transport.serial import LinkLost, SerialLink, SerialSettings


@pytest.fixture
def socat_pair(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    a, b = tmp_path / "a", tmp_path / "b"
    if shutil.which("socat"):
        command = ["socat", f"PTY,raw,echo=0,link={a}", f"PTY,raw,echo=0,link={b}"]
    else:  # same behaviour from a few lines of Python; .ci/run installs socat
        command = [
            sys.executable,
            str(Path(__file__).parent.parent / "ptyrelay.py"),
            str(a),
            str(b),
        ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("socat did not create its ptys")
        time.sleep(0.01)
    yield proc, a, b
    proc.kill()
    proc.wait()


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SerialLink]:
    link = SerialLink(SerialSettings(str(path), 4800))
    await link.open()
    try:
        yield link
    finally:
        await link.close()


async def test_bytes_flow_both_ways(socat_pair: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    _, a, b = socat_pair
    async with opened(a) as link:
        with serial.Serial(str(b), 4800, timeout=1) as peer:
            link.write(b"\xa0")
            assert peer.read(1) == b"\xa0"
            peer.write(b"\xb0")
            assert await link.read(1.0) == b"\xb0"
            assert await link.read(0.05) == b""  # nothing more: a timeout is not an error


async def test_killing_socat_is_link_lost_within_a_second(
    socat_pair: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    proc, a, _ = socat_pair
    async with opened(a) as link:
        reader = asyncio.create_task(link.read(5.0), name="test.read")
        await asyncio.sleep(0.1)
        proc.kill()
        killed = time.monotonic()
        with pytest.raises(LinkLost, match="lost"):
            async with asyncio.timeout(1.0):
                await reader
        assert time.monotonic() - killed < 1.0
        assert not link.is_open
        with pytest.raises(LinkLost):
            link.write(b"\xa2")


async def test_missing_port_is_a_clear_link_lost(tmp_path: Path) -> None:
    link = SerialLink(SerialSettings(str(tmp_path / "ttyUSB9"), 4800))
    with pytest.raises(LinkLost, match="cannot open serial port"):
        await link.open()


async def test_a_port_is_opened_exclusively(
    socat_pair: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    _, a, _ = socat_pair
    async with opened(a):
        second = SerialLink(SerialSettings(str(a), 4800))
        with pytest.raises(LinkLost, match="cannot open"):
            await second.open()
