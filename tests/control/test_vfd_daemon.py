"""The delta-vfd driver against the simulated drive (a pymodbus RTU server) over a real pty,
through the controller: reverse walking on a reversed belt, e-stop, link loss, and the refusal to
run a drive that would keep going on a dead link."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from control.rig import Rig, driver_rig, with_rules
from control.wire_programs import PROGRAMS
from treadctl.config.models import DeviceConfig, VfdConfig
from treadctl.core import commands as c
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.state import Mode
from treadctl.core.timeline import DeviceProfile
from treadctl.devices import build_driver, capabilities_of
from treadctl.drivers import delta_vfd_codec as codec
from treadctl.drivers.base import Driver
from treadctl.drivers.delta_vfd_codec import Access
from treadctl.sim.delta_vfd import FAULT_COMM, DeltaVfdPersonality
from treadctl.sim.physics import BeltPhysics, StopCause

FWD, BACK = WalkDirection.FORWARD, WalkDirection.BACKWARD
KMH_PER_HZ = 0.2  # the simulated belt: 10 km/h at 50 Hz


def config(port: str = "unused", *, accept: bool = False) -> DeviceConfig:
    return DeviceConfig(
        driver="delta-vfd",
        port=port,
        poll_interval_s=0.1,
        vfd=VfdConfig(kmh_per_hz=KMH_PER_HZ, accept_no_comm_watchdog=accept),
    )


CAPS = capabilities_of(config())
RULES = with_rules(speed_resolution_kmh=CAPS.speed_resolution_kmh)
PROFILE = DeviceProfile("delta-vfd", CAPS, countdown_s=1.0, max_accel_mps2=0.15)


@asynccontextmanager
async def drive(
    *,
    treatment: int = 1,
    timeout_s: float = 0.5,
    accept: bool = False,
    link: Path | None = None,
) -> AsyncIterator[Rig]:
    personality = DeltaVfdPersonality(
        BeltPhysics(), kmh_per_hz=KMH_PER_HZ, comm_treatment=treatment, comm_timeout_s=timeout_s
    )

    def make_driver(port: str) -> Driver:
        return build_driver(config(port, accept=accept))

    async with driver_rig(
        personality, make_driver, PROFILE, RULES, link=link, programs=PROGRAMS
    ) as r:
        yield r


def writes(r: Rig, address: int, since: float = 0.0) -> list[tuple[float, int]]:
    return [
        (x.at, x.request.values[0])
        for x in r.sim.wire.requests
        if x.at >= since
        and isinstance(x.request, Access)
        and x.request.values
        and x.request.address == address
    ]


def accesses_since(r: Rig, t: float) -> list[Access]:
    return [x.request for x in r.sim.wire.requests if x.at >= t and isinstance(x.request, Access)]


async def test_a_backward_program_runs_the_belt_in_reverse() -> None:
    async with drive() as r:
        await r.program_to_end("retro-short")
        assert r.phase_directions() == [
            ("forward", "forward"),
            ("backward", "reverse"),
        ]
        assert min(v for _, v in r.trace) < -0.9  # the belt ran backwards at about 1 km/h
        backward = [s for s in r.snapshots if s.target.walk is BACK and s.actual.speed_kmh > 0.8]
        assert backward
        assert all(s.actual.belt is BeltDirection.REVERSE for s in backward)
        # the run-reverse frame of the research notes went on the wire, with the belt still
        assert bytes.fromhex("01 06 20 00 00 22 02 13") in r.sim.wire.rx
        (t_rev, _) = next(w for w in writes(r, codec.REG_COMMAND) if w[1] == codec.RUN_REVERSE)
        assert all(v == 0 for t, v in r.trace if abs(t - t_rev) < 0.05)
        still_since = max(t for t, v in r.trace if t < t_rev and v != 0)
        assert t_rev - still_since >= RULES.reversal_standstill_s + 1.0 - 0.15  # + countdown
        # frequencies in 0.01 Hz: 1.0 km/h is 5.00 Hz
        assert max(v for _, v in writes(r, codec.REG_FREQUENCY)) == 500
        ended = r.finished()
        assert ended["ended"] == "finished"
        assert r.sim.belt.still


async def test_estop_writes_the_stop_frame_at_once() -> None:
    async with drive() as r:
        assert (await r.run(c.ManualSet(2.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.5, 15, "reverse at speed")
        mark = len(r.sim.wire.rx)
        t0 = time.monotonic()
        r.controller.emergency_stop_now()  # the synchronous path (MQTT callback, e-stop input)
        await r.until(lambda: bool(accesses_since(r, t0)), 1, "stop received")
        after = accesses_since(r, t0)
        # A read written just before the call may reach the drive after t0; nothing written
        # after the call comes before the stop.
        first = after.index(Access(6, codec.REG_COMMAND, 1, (codec.STOP,)))
        assert first <= 1
        assert all(a.values is None for a in after[:first])
        assert bytes.fromhex("01 06 20 00 00 01 43 CA") in bytes(r.sim.wire.rx[mark:])
        await r.until(lambda: r.sim.belt.still, 3, "belt still")
        await r.mode(Mode.ESTOP, 1)
        assert all(v == 0 for _, v in writes(r, codec.REG_FREQUENCY, t0))
        assert (await r.run(c.ManualSet(1.0, FWD))).code == "estop_latched"


async def test_unplug_is_a_fault_within_a_second_and_the_drive_stops_the_belt(
    tmp_path: Path,
) -> None:
    async with drive(link=tmp_path / "vfd") as r:
        assert (await r.run(c.ManualSet(1.5, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -1.0, 15, "reverse at speed")
        r.sim.unplug()
        t0 = time.monotonic()
        await r.mode(Mode.FAULT, 2)
        assert time.monotonic() - t0 < 1.0
        # nobody can reach the drive now: its own comm-loss stop (Pr.09-02/03) takes over
        await r.until(lambda: not r.sim.belt.running, 1.5, "drive stopped by itself")
        assert r.sim.belt.stop_cause is StopCause.WATCHDOG
        await r.until(lambda: r.sim.belt.still, 5, "belt still")
        r.sim.replug()
        await r.until(lambda: "link_restored" in r.event_types(), 5)
        await asyncio.sleep(0.3)
        assert (await r.run(c.Reset())).ok
        await asyncio.sleep(RULES.estop_interlock_s + 0.1)
        assert r.sim.protocol.describe().endswith("Pr.09-03 = 0.5 s")
        assert f"fault {FAULT_COMM}" in r.sim.protocol.describe()
        assert (await r.run(c.ManualSet(1.0, FWD))).ok  # start() resets the cE10 trip
        await r.until(lambda: r.sim.belt.speed_kmh > 0.8, 10, "running again")


async def test_silence_is_a_fault_within_a_second_and_the_stop_is_written() -> None:
    async with drive() as r:
        t0 = await r.silenced_at_speed()
        await r.until(lambda: codec.STOP in [v for _, v in writes(r, codec.REG_COMMAND, t0)], 1)
        await r.until(lambda: r.sim.belt.still, 3, "belt still")
        assert r.sim.belt.stop_cause is StopCause.COMMAND  # stopped by treadctl, not the drive


@pytest.mark.parametrize(
    ("treatment", "timeout_s", "why"),
    [
        (3, 0.0, "keeps running"),  # the factory default
        (0, 0.5, "keeps running"),  # warn and keep operating
        (1, 0.0, "keeps running"),  # ramp to stop, but the time-out is disabled
        (1, 5.0, "5.0 s blind"),
    ],
)
async def test_a_drive_that_keeps_running_on_a_dead_link_is_refused(
    treatment: int, timeout_s: float, why: str
) -> None:
    async with drive(treatment=treatment, timeout_s=timeout_s) as r:
        res = await r.run(c.ManualSet(1.0, FWD))
        assert not res.ok
        assert why in res.message
        assert "Pr.09-02" in res.message
        assert "device.vfd.accept_no_comm_watchdog" in res.message
        res = await r.run(c.Start("retro-short"))
        assert not res.ok
        assert "Pr.09-03" in res.message
        await asyncio.sleep(0.3)
        assert all(v == codec.STOP for _, v in writes(r, codec.REG_COMMAND))  # never a run
        assert r.sim.belt.still
        assert r.controller.mode is Mode.IDLE


async def test_the_risk_can_be_accepted_in_the_configuration() -> None:
    async with drive(treatment=3, timeout_s=0.0, accept=True) as r:
        assert (await r.run(c.ManualSet(1.0, BACK))).ok
        await r.until(lambda: r.sim.belt.speed_kmh < -0.8, 10, "reverse")
        assert not r.sim.belt.watchdog_armed  # the drive would not stop on its own
        assert (await r.run(c.Stop())).ok
        await r.mode(Mode.IDLE, 15)
        assert r.sim.belt.still


async def test_the_safety_key_on_the_drive_latches_an_estop() -> None:
    async with drive() as r:
        assert (await r.run(c.ManualSet(1.5, FWD))).ok
        await r.until(lambda: r.sim.belt.speed_kmh > 1.0, 10, "at speed")
        r.sim.pull_key()  # wired to the drive's external-fault input
        await r.mode(Mode.ESTOP, 2)
        # the event follows the latch once the stop is confirmed on the wire
        await r.until(lambda: "estop" in r.event_types(), 2, "estop event")
        estop = next(e for e in r.events if e.type == "estop")
        assert estop.details["cause"] == "treadmill_stop"
        await r.until(lambda: r.sim.belt.still, 3)
