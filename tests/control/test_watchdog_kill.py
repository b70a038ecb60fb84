"""Rule 8: kill the process that owns the belt; the treadmill's own watchdog stops it."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from waiting import until

from treadctl.drivers.trackmaster_codec import Op
from treadctl.sim.physics import StopCause
from treadctl.sim.pty_server import SimulatedTreadmill

SCRIPT = Path(__file__).with_name("controller_proc.py")
# The simulated treadmill checks its watchdog at each physics tick (20 ms): the stop is late by
# that tick plus however late the loop ran it, which tests/loopwatch.py keeps under 0.2 s. Never
# as late as a second watchdog period.
LATE_S = 0.25


async def test_sigkill_of_the_controller_leaves_the_belt_stopped_by_the_watchdog() -> None:
    async with SimulatedTreadmill("woodway") as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), sim.path, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            assert line.strip() == b"started", line
            await until(
                lambda: sim.belt.speed_kmh <= -1.0, timeout=10, what="belt reversing", step=0.02
            )
            assert sim.belt.watchdog_armed
            proc.send_signal(signal.SIGKILL)  # no finally, no goodbye: the process is gone
            await proc.wait()
            killed = time.monotonic()
            await until(lambda: not sim.belt.running, timeout=3, what="the watchdog's stop")
            assert sim.belt.stop_cause is StopCause.WATCHDOG
            # the treadmill's own record: no byte after the kill, and the watchdog fired once the
            # line had been quiet for 0.5 s
            assert sim.belt.last_rx <= killed
            silence = sim.belt.watchdog_silence_s
            assert silence is not None
            assert 0.5 <= silence < 0.5 + LATE_S, silence
            assert sim.belt.last_rx + silence - killed < 0.5 + LATE_S  # stopped after the kill
            assert sim.wire.rx[-1:] != bytes([Op.STOP])  # nobody sent a stop: the watchdog did it
            await until(lambda: sim.belt.still, timeout=5, what="belt still", step=0.02)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
