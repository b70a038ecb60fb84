"""The simulated Delta drive, driven by pymodbus's own client: registers follow the belt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerType
from waiting import until

from treadctl.drivers import delta_vfd_codec as codec
from treadctl.sim.console import apply
from treadctl.sim.delta_vfd import FAULT_COMM, DeltaVfdPersonality
from treadctl.sim.physics import BeltPhysics, StopCause
from treadctl.sim.pty_server import SimulatedTreadmill

# The simulated drive checks for a quiet line at each physics tick (20 ms): its comm-loss stop is
# late by that tick plus however late the loop ran it, which tests/loopwatch.py keeps under 0.2 s.
# Never as late as a second timeout period.
LATE_S = 0.25


def say(sim: SimulatedTreadmill, line: str) -> str:
    reply = apply(sim, line)
    assert reply is not None
    return reply


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedTreadmill]:
    drive = DeltaVfdPersonality(BeltPhysics(accel_mps2=2.0), kmh_per_hz=0.2)
    async with SimulatedTreadmill(drive) as sim:
        yield sim


@pytest.fixture
async def client(sim: SimulatedTreadmill) -> AsyncIterator[AsyncModbusSerialClient]:
    client = AsyncModbusSerialClient(
        sim.path, framer=FramerType.RTU, baudrate=9600, timeout=0.5, retries=0
    )
    before = asyncio.all_tasks()
    assert await client.connect()
    yield client
    client.close()
    # close() cancels pymodbus's tasks (the serial poll, a reconnect): until they have ended
    await until(
        lambda: all(t.done() for t in asyncio.all_tasks() - before - {asyncio.current_task()}),
        what="pymodbus's tasks to end",
    )


async def status(client: AsyncModbusSerialClient) -> list[int]:
    rr = await client.read_holding_registers(codec.REG_STATUS, count=5, device_id=1)
    assert not rr.isError()
    return list(rr.registers)


async def test_run_reverse_follows_the_physics(
    sim: SimulatedTreadmill, client: AsyncModbusSerialClient
) -> None:
    assert (
        await client.read_holding_registers(codec.PR_09_02, count=2, device_id=1)
    ).registers == [
        1,
        5,
    ]  # the simulated drive comes configured safe: ramp to stop after 0.5 s
    assert not (
        await client.write_register(codec.REG_COMMAND, codec.RUN_REVERSE, device_id=1)
    ).isError()
    assert not (await client.write_register(codec.REG_FREQUENCY, 1000, device_id=1)).isError()
    async with asyncio.timeout(5):
        while (await status(client))[3] < 1000:  # output frequency reaches 10.00 Hz
            await asyncio.sleep(0.05)
    fault, word, cmd, out, amps = await status(client)
    assert (fault, cmd, out) == (0, 1000, 1000)
    drive = codec.DriveStatus.decode((fault, word, cmd, out, amps))
    assert drive.drive is codec.Drive.RUNNING
    assert drive.reverse
    assert sim.belt.speed_kmh == pytest.approx(-2.0)  # 10 Hz × 0.2 km/h per Hz, reversed
    assert sim.belt.watchdog_armed
    # never a direction change at speed: the simulated drive refuses it (CE03)
    rr = await client.write_register(codec.REG_COMMAND, codec.RUN_FORWARD, device_id=1)
    assert rr.isError()
    assert rr.exception_code == 3
    # the status registers are read-only
    assert (await client.write_register(codec.REG_STATUS, 1, device_id=1)).isError()
    assert not (await client.write_register(codec.REG_COMMAND, codec.STOP, device_id=1)).isError()
    async with asyncio.timeout(3):
        while not sim.belt.still:
            await asyncio.sleep(0.05)
    assert codec.DriveStatus.decode(tuple(await status(client))).drive is codec.Drive.STOPPED


async def test_the_comm_loss_stop_fires_after_pr_09_03(
    sim: SimulatedTreadmill, client: AsyncModbusSerialClient
) -> None:
    await client.write_register(codec.REG_FREQUENCY, 500, device_id=1)
    await client.write_register(codec.REG_COMMAND, codec.RUN_FORWARD, device_id=1)
    assert sim.belt.running
    await until(lambda: not sim.belt.running, what="the comm-loss stop")  # the line is quiet now
    assert sim.belt.stop_cause is StopCause.WATCHDOG
    assert sim.belt.watchdog_silence_s is not None
    assert 0.5 <= sim.belt.watchdog_silence_s < 0.5 + LATE_S
    assert (await status(client))[0] == FAULT_COMM  # cE10 latched until reset
    # a tripped drive ignores run until the fault is reset
    await client.write_register(codec.REG_COMMAND, codec.RUN_FORWARD, device_id=1)
    assert not sim.belt.running
    await client.write_register(codec.REG_CONTROL, codec.CONTROL_RESET, device_id=1)
    assert (await status(client))[0] == 0


async def test_keep_running_on_a_dead_link_when_told_to(
    sim: SimulatedTreadmill, client: AsyncModbusSerialClient
) -> None:
    assert say(sim, "param 09-02 3").startswith("ok:")
    assert "Pr.09-02 = 03" in say(sim, "status")
    await client.write_register(codec.REG_FREQUENCY, 500, device_id=1)
    await client.write_register(codec.REG_COMMAND, codec.RUN_FORWARD, device_id=1)
    # quiet for a second, twice Pr.09-03's 0.5 s, as the drive's own clock counts it
    await until(lambda: sim.clock() - sim.belt.last_rx > 1.0, what="a second of silence")
    sim.belt.advance(sim.clock())
    assert sim.belt.running  # the factory default: the belt runs on, blind
    # Pr.09-03 can be written over Modbus too (0.1 s units), and takes effect at once
    await client.write_register(codec.PR_09_02, 1, device_id=1)
    await client.write_register(codec.PR_09_03, 3, device_id=1)
    await until(lambda: not sim.belt.running, what="the comm-loss stop after 0.3 s")
    assert sim.belt.stop_cause is StopCause.WATCHDOG
    assert sim.belt.watchdog_silence_s is not None
    assert 0.3 <= sim.belt.watchdog_silence_s < 0.3 + LATE_S
    assert say(sim, "param 09-03 x").startswith("error")
    assert say(sim, "param 09-05 1").startswith("error")
