"""The fleet benchmark, its load generators and the charts, end to end with tiny numbers, so that
CI proves they work: real mosquitto, `treadctl run` on simulated treadmills, the clinic service
with its live stream read, load generators as processes. The figures are not judged (they
depend on the machine and its load; docs/performance.md has them), only that each was measured
and that a generator behaves as a daemon does on the broker."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from bench_process import BENCH, run_bench
from paho.mqtt.enums import CallbackAPIVersion
from waiting import until

from treadctl.sim.brokers import HOST, NEEDS_MOSQUITTO, Broker, find_mosquitto, mosquitto_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if find_mosquitto() is None:
        pytest.skip(NEEDS_MOSQUITTO)
    with mosquitto_broker(tmp_path, nodelay=True) as b:
        yield b


@pytest.mark.timeout(240)
def test_the_fleet_bench_ramps_then_measures_each_size(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip(NEEDS_MOSQUITTO)
    out = tmp_path / "fleet.json"
    # thresholds no loaded CI machine reaches: the ramp stops at --max-daemons, a fault aside
    args = ["--daemons=auto", "--max-daemons=2", "--step=1", "--ramp-window=1", "--ramp-ticks=0"]
    args += ["--tick-late-ms=5000", "--poll-span-ms=5000"]
    args += ["--sizes=4", "--trials=2", "--window=2", f"--json={out}"]
    stdout = run_bench("fleet.py", args, tmp_path, 230)
    assert "written:" in stdout
    figures: dict[str, Any] = json.loads(out.read_text())
    assert figures["real_daemons"] == 2
    # daemons replaced generators one at a time, under the largest fleet's load
    steps = [(step["daemons"], step["generators"]) for step in figures["ramp"]["steps"]]
    assert steps == [(1, 3), (2, 2)]
    assert [(s["size"], s["daemons"], s["generators"]) for s in figures["sizes"]] == [(4, 2, 2)]
    for size in figures["sizes"]:
        assert size["estop"]["n"] >= 2  # every daemon e-stopped each round
        assert size["baseline"]["n"] == size["estop"]["n"]
        assert 0 < size["estop"]["max_ms"] < 5000  # each waited for its stop byte
        window = size["window"]
        assert window["cpu_pct"]["broker"] >= 0
        assert window["clinic_rss_mb"] > 10
        assert window["poll_span"]["n"] > 0  # the treadmills saw the daemons' polls
    loaded = figures["sizes"][0]["window"]
    assert loaded["live_lag"]["n"] > 0  # the generators' samples reached the live stream
    assert loaded["subscriber_lag"]["n"] > 0
    assert sum(s["samples"] for s in figures["generator_stats"]) > 0

    charts = tmp_path / "charts"
    estop = tmp_path / "estop.json"
    trials = [{"treadctl_s": 0.001 * (1 + i % 3), "baseline_s": 0.0008} for i in range(10)]
    estop.write_text(json.dumps({"trials": trials}))
    stdout = run_bench(
        "charts.py", [f"--fleet={out}", f"--estop={estop}", f"--out={charts}"], tmp_path, 60
    )
    for name in ("fleet-estop.png", "fleet-estop-distribution.png", "estop-distribution.png"):
        assert (charts / name).read_bytes().startswith(b"\x89PNG"), name


class Listener:
    """A client on every topic of the generators, collecting what they say."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{secrets.token_hex(3)}", protocol=paho.MQTTv5
        )
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client.on_message = self._on_message
        self.client.connect(HOST, port)
        self.client.subscribe("treadctl/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), message.retain))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def answer(self, device: str, name: str, rid: str) -> dict[str, Any] | None:
        for payload in self.on(f"treadctl/{device}/response/{name}"):
            body: dict[str, Any] = json.loads(payload)
            if body.get("id") == rid:
                return body
        return None

    async def command(self, device: str, name: str) -> dict[str, Any]:
        rid = secrets.token_hex(4)
        payload = json.dumps({"id": rid}).encode()
        self.client.publish(f"treadctl/{device}/cmd/{name}", payload, qos=1)
        await until(lambda: self.answer(device, name, rid) is not None)
        answer = self.answer(device, name, rid)
        assert answer is not None
        return answer

    async def raw(self, device: str, name: str, payload: bytes) -> dict[str, Any]:
        """The answer to a payload that carries no id (the only command on that topic)."""
        topic = f"treadctl/{device}/response/{name}"
        self.client.publish(f"treadctl/{device}/cmd/{name}", payload, qos=1)
        await until(lambda: len(self.on(topic)) == 1)
        answer: dict[str, Any] = json.loads(self.on(topic)[0])
        return answer

    def last_state(self, device: str) -> dict[str, Any]:
        states = self.on(f"treadctl/{device}/state")
        assert states, f"no state from {device}"
        state: dict[str, Any] = json.loads(states[-1])
        return state

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.timeout(60)
async def test_a_load_generator_publishes_as_a_daemon_and_answers_its_commands(
    broker: Broker, tmp_path: Path
) -> None:
    stats = tmp_path / "stats.json"
    listener = Listener(broker.port)
    gen = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "loadgen.py"),
            str(broker.port),
            "--count=2",
            "--first=5",
            f"--stats={stats}",
            f"--samples={tmp_path / 'samples.txt'}",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert gen.stdout is not None
        assert (await asyncio.to_thread(gen.stdout.readline)).strip() == b"ready"
        device = "gen-005"
        await until(lambda: len(listener.on(f"treadctl/{device}/telemetry")) >= 5)
        assert listener.on(f"treadctl/{device}/availability") == [b"online"]
        sample = json.loads(listener.on(f"treadctl/{device}/telemetry")[-1])
        assert sample["speed_kmh"] == pytest.approx(1.2)
        assert isinstance(sample["heart_rate_bpm"], int)
        assert listener.last_state(device)["mode"] == "running"

        # the e-stop on any payload latches; starts are refused until a reset
        listener.client.publish(f"treadctl/{device}/cmd/estop", b"STOP", qos=1)
        await until(lambda: listener.last_state(device)["mode"] == "estop")
        events = [json.loads(e)["type"] for e in listener.on(f"treadctl/{device}/event")]
        assert "estop" in events
        assert "session_finished" in events
        refused = await listener.command(device, "set")
        assert refused["ok"] is False
        assert refused["error"]["code"] == "estop_latched"
        assert (await listener.command(device, "reset"))["ok"] is True
        await until(lambda: listener.last_state(device)["mode"] == "idle")
        assert (await listener.command(device, "set"))["ok"] is True
        await until(lambda: listener.last_state(device)["mode"] == "running")
        unknown = await listener.command(device, "bogus")
        assert unknown["error"]["code"] == "unknown_command"
        junk = await listener.raw("gen-006", "pause", b"not json")
        assert junk["ok"] is False
        assert junk["error"]["code"] == "invalid_json"
        assert listener.last_state("gen-006")["mode"] == "running"  # changed nothing
    finally:
        gen.terminate()
        await asyncio.to_thread(gen.wait, 20)  # it writes its figures on the way out
        if gen.stdout is not None:
            gen.stdout.close()
        await asyncio.to_thread(listener.close)
    figures = json.loads(stats.read_text())
    assert figures["treadmills"] == 2
    assert figures["samples"] > 0
    assert figures["answered"]["estop"] == 1
    assert len((tmp_path / "samples.txt").read_text().splitlines()) == figures["samples"]
    assert listener.on("treadctl/gen-005/availability")[-1] == b"offline"  # its goodbye
