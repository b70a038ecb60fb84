"""End to end: `treadctl sim` and `treadctl run` as separate processes, a real broker, commands
from mosquitto_pub; the simulated treadmill's own report says what the belt did."""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from mqtt.brokers import NEEDS_CLIENTS, Broker
from mqtt.harness import user_client
from mqtt.processes import mosquitto_pub, online, simulator, start_daemon, write_config
from treadctl.config.models import Settings
from treadctl.mqtt.topics import Topics

pytestmark = [
    pytest.mark.mosquitto_clients,
    pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason=NEEDS_CLIENTS),
]
PROGRAM = "alghadir2019-knee-oa"


@pytest.mark.timeout(240)  # one story through five daemon lifetimes, ~1 min
async def test_the_daemon_end_to_end(broker: Broker, tmp_path: Path) -> None:
    link = tmp_path / "treadmill"
    device = f"e{secrets.token_hex(3)}"
    config = tmp_path / "treadctl.toml"
    write_config(config, broker, link, device)
    settings = Settings(device={"id": device, "driver": "woodway", "port": str(link)})
    topics = Topics.from_settings(settings)
    async with simulator(link) as sim, user_client(broker, topics) as user:
        daemon = await start_daemon(config)
        try:
            await online(user, topics, 0)
            await asyncio.sleep(3.2)  # rule 7: no start for 3 s after power-up

            # a program started with mosquitto_pub: the belt runs in reverse, telemetry flows
            await mosquitto_pub(broker, topics.cmd("start"), f'{{"id": 1, "program": "{PROGRAM}"}}')
            answer = await user.wait_for(topics.response("start"), lambda p: p["id"] == 1)
            assert answer["ok"], answer
            await sim.until(
                lambda s, d, v, _: s == "running" and d == "reverse" and v >= 1.0, 15, "reverse"
            )
            await user.wait_for(
                topics.telemetry, lambda t: t["belt"] == "reverse" and t["speed_kmh"] > 0.9
            )

            # e-stop with any payload: the treadmill stops at once (its fast stop), latched
            t_estop = time.monotonic()
            await mosquitto_pub(broker, topics.cmd("estop"), "STOP")
            await sim.until(lambda s, _d, _v, _l: s == "stopped", 5, "e-stopped", t_estop)
            await user.wait_for(topics.state, lambda s: s["mode"] == "estop")
            stopped_at = await sim.until(lambda _s, _d, v, _l: v == 0, 10, "still", t_estop)
            print(
                f"\ne-stop: mosquitto_pub -> belt still in {stopped_at - t_estop:.2f} s",
                file=sys.stderr,
            )
            await asyncio.sleep(0.5)
            await mosquitto_pub(broker, topics.cmd("reset"), '{"id": 2}')
            assert (await user.wait_for(topics.response("reset"), lambda p: p["id"] == 2))["ok"]
            await asyncio.sleep(3.2)  # interlock after the reset

            # SIGKILL at speed: the treadmill's own watchdog stops the belt
            await mosquitto_pub(broker, topics.cmd("start"), f'{{"id": 3, "program": "{PROGRAM}"}}')
            assert (await user.wait_for(topics.response("start"), lambda p: p["id"] == 3))["ok"]
            await sim.until(
                lambda s, d, v, _: s == "running" and d == "reverse" and v >= 1.0, 15, "reverse"
            )
            killed_at = time.monotonic()
            daemon.kill()
            await daemon.wait()
            watchdog_at = await sim.until(
                lambda _s, _d, _v, line: "stopped by watchdog" in line, 3, "watchdog", killed_at
            )
            # The treadmill's watchdog trips after 0.5 s without a byte (the simulator checks
            # every 20 ms); the last byte came before the kill, so this bounds kill -> stop.
            line = next(text for at, text in sim.lines if at == watchdog_at)
            silence = float(re.findall(r"after ([0-9.]+) s of silence", line)[0])
            print(
                f"SIGKILL -> belt stopped by the watchdog within {silence:.2f} s", file=sys.stderr
            )
            assert silence <= 0.5 + 0.05, line
            await user.wait_for(topics.availability, lambda p: p == "offline", 10)  # last will
            await sim.until(lambda _s, _d, v, _l: v == 0, 15, "coasted to a stop", killed_at)

            # restarted: the belt is commanded to stop first and nothing resumes
            seen = len(user.on(topics.availability))
            restarted_at = time.monotonic()
            daemon = await start_daemon(config)
            await online(user, topics, seen)
            await asyncio.sleep(3.5)  # past the start interlock of power-up (3 s)
            assert all(s == "stopped" for _, s, _, _ in sim.belt(restarted_at)), sim.belt(
                restarted_at
            )
            state = await user.wait_for(topics.state, lambda s: s["mode"] == "idle")
            assert state["session_id"] is None

            # SIGTERM: a controlled ramp down, `offline` retained, exit 0
            await mosquitto_pub(broker, topics.cmd("start"), f'{{"id": 4, "program": "{PROGRAM}"}}')
            answer = await user.wait_for(topics.response("start"), lambda p: p["id"] == 4)
            assert answer["ok"], answer
            await sim.until(
                lambda s, d, v, _: s == "running" and d == "reverse" and v >= 1.5, 20, "speed"
            )
            term_at = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.wait(), 20) == 0
            # The daemon is done once the read-back says 0.0 mph; the last cm/s coast out on the
            # treadmill after that, under its own stop.
            await sim.until(lambda s, _d, v, _l: s == "stopped" and v == 0, 5, "still", term_at)
            ramp = [v for _, _, _, v in sim.belt(term_at)]
            steps = [a - b for a, b in itertools.pairwise(ramp)]
            assert len(ramp) >= 4, ramp  # a ramp in steps, not a drop
            assert max(steps) < 0.5, ramp
        finally:
            if daemon.returncode is None:
                daemon.kill()
                await daemon.wait()
    async with user_client(broker, topics) as late:  # a client arriving later sees `offline`
        assert await late.wait_for(topics.availability) == "offline"
