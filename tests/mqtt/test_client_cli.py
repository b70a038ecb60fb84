"""`treadctl start|stop|pause|resume|skip|estop|reset|status` as real processes.

Each command runs as `python -m treadctl …` with a configuration file pointing at a real broker,
where the daemon's MQTT bridge and controller (mqtt.harness.bridged) drive the simulated
treadmill on a real pty: what the belt did is read on the simulator's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqtt.brokers import Broker
from mqtt.harness import Bridged, bridged
from mqtt.processes import Output, reading
from treadctl.core.state import Mode
from treadctl.sim.brokers import free_port

PROGRAM = "alghadir2019-knee-oa"  # one backward phase, parameter comfortable_backward_kmh
MULTI_PHASE = "elderly-balance"  # forward warm-up, then backward phases
# The CLI must see only the files the tests write, not a TREADCTL_* of the environment.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("TREADCTL_")}
CLI_LIMIT_S = 30.0  # a process taking longer than this is a failure of its own


@dataclass(frozen=True, slots=True)
class Run:
    """One finished `treadctl` process."""

    code: int
    out: str
    err: str
    seconds: float


async def treadctl(*args: str) -> Run:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "treadctl", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    try:
        async with asyncio.timeout(CLI_LIMIT_S):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


def write_config(path: Path, *, host: str, port: int, protocol: str, device: str) -> Path:
    path.write_text(
        f'[device]\nid = "{device}"\n'
        f'[mqtt]\nhost = "{host}"\nport = {port}\nprotocol = "{protocol}"\n'
    )
    return path


@dataclass
class Daemon:
    """The bridged daemon, and the CLI's configuration file for it."""

    b: Bridged
    config: Path

    async def cli(self, *args: str) -> Run:
        return await treadctl(*args, "--config", str(self.config))

    @property
    def base(self) -> str:
        return self.b.topics.base


@contextlib.asynccontextmanager
async def daemon(broker: Broker, tmp_path: Path) -> AsyncIterator[Daemon]:
    async with bridged(broker) as b:
        config = write_config(
            tmp_path / "treadctl.toml",
            host=broker.host,
            port=broker.port,
            protocol=broker.protocol,
            device=b.settings.device.id,
        )
        yield Daemon(b, config)


async def running_reverse(b: Bridged, kmh: float = 0.1) -> None:
    """The simulated belt runs in reverse at `kmh` or more (signed speeds: reverse < 0)."""
    await b.rig.until(
        lambda: b.rig.sim.belt.running and b.rig.sim.belt.speed_kmh <= -kmh, 15, "belt reverse"
    )


def ok(run: Run, pattern: str) -> None:
    """Exit 0 and the daemon's ok line on stdout."""
    assert run.code == 0, run
    assert re.fullmatch(pattern, run.out.strip()), run
    assert run.err == "", run


def refused(run: Run, code: str) -> None:
    """Exit 1 and the daemon's error code on stderr."""
    assert run.code == 1, run
    assert run.out == "", run
    assert run.err.startswith(f"error {code}: "), run


# --- commands ---------------------------------------------------------------------------------


async def test_start_runs_the_belt_in_reverse_and_estop_latches_until_reset(
    broker: Broker, tmp_path: Path
) -> None:
    async with daemon(broker, tmp_path) as d:
        b = d.b
        run = await d.cli("start", PROGRAM)
        ok(run, rf"ok: started {PROGRAM} \(\S+\)")
        state = await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "running")
        assert state["program"] == PROGRAM
        assert state["session_id"] in run.out
        # a second start while running: the daemon's refusal, exit 1
        refused(await d.cli("start", PROGRAM), "not_allowed_in_mode")
        await running_reverse(b)
        assert all(kmh <= 0 for _, kmh in b.rig.trace), "the belt never ran forward"

        ok(await d.cli("estop"), r"ok: emergency stop: belt stopped")
        # answered once the treadmill confirmed the stop
        assert not b.rig.sim.belt.running
        assert b.rig.controller.mode is Mode.ESTOP
        await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "estop")
        await b.user.wait_for(b.topics.event, lambda e: e["type"] == "estop")
        # Again while latched: answered at once, so each client must be subscribed before its
        # e-stop reaches the daemon (publishing first lost about one answer in ten).
        for again in await asyncio.gather(d.cli("estop"), d.cli("estop"), d.cli("estop")):
            ok(again, r"ok: emergency stop: belt stopped")
        refused(await d.cli("start", PROGRAM), "estop_latched")
        assert not b.rig.sim.belt.running
        await b.rig.until(lambda: b.rig.sim.belt.still, 10, "belt still")
        ok(await d.cli("reset"), r"ok: reset.*")
        await b.rig.mode(Mode.IDLE, 5)
        await b.user.wait_for(b.topics.event, lambda e: e["type"] == "reset")


async def test_start_passes_parameters(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d:
        unknown, outside = await asyncio.gather(
            d.cli("start", PROGRAM, "--param", "no_such_parameter=1"),
            d.cli("start", PROGRAM, "--param", "comfortable_backward_kmh=9"),
        )
        refused(unknown, "program_invalid")
        assert "no_such_parameter" in unknown.err
        refused(outside, "program_invalid")
        assert "comfortable_backward_kmh" in outside.err
        assert d.b.rig.controller.mode is Mode.IDLE
        assert not d.b.rig.sim.belt.running

        run = await d.cli("start", PROGRAM, "--param", "comfortable_backward_kmh=0.8")
        ok(run, rf"ok: started {PROGRAM} \(\S+\)")
        event = await d.b.user.wait_for(d.b.topics.event, lambda e: e["type"] == "session_started")
        assert event["parameters"] == {"comfortable_backward_kmh": 0.8}
        assert event["program"] == PROGRAM


async def test_start_for_a_person_with_their_limits(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d:
        person = ("--person", "mrs-k", "--limit", "max_speed_backward_kmh=0.5")
        beyond = await d.cli("start", PROGRAM, *person, "--param", "comfortable_backward_kmh=0.8")
        refused(beyond, "limit_exceeded")
        assert "max_speed_backward_kmh = 0.5" in beyond.err
        assert d.b.rig.controller.mode is Mode.IDLE
        assert not d.b.rig.sim.belt.running

        run = await d.cli("start", PROGRAM, *person, "--param", "comfortable_backward_kmh=0.5")
        ok(run, rf"ok: started {PROGRAM} \(\S+\)")
        event = await d.b.user.wait_for(d.b.topics.event, lambda e: e["type"] == "session_started")
        assert event["person"] == "mrs-k"
        state = await d.b.user.wait_for(d.b.topics.state, lambda s: s["mode"] == "running")
        assert state["person"] == "mrs-k"


async def test_pause_resume_skip_stop(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d:
        b = d.b
        ok(await d.cli("start", MULTI_PHASE), rf"ok: started {MULTI_PHASE} \(\S+\)")
        # skip is refused in the start countdown; the warm-up is phase 1
        await b.user.wait_for(
            b.topics.state, lambda s: s["mode"] == "running" and "warm-up" in (s["phase"] or "")
        )
        ok(await d.cli("pause"), r"ok: paused.*")
        await b.user.wait_for(b.topics.state, lambda s: s["mode"] == "paused")
        await b.rig.until(lambda: b.rig.sim.belt.still, 15, "belt still when paused")
        ok(await d.cli("resume"), r"ok: resumed.*")
        await b.user.wait_for(b.topics.event, lambda e: e["type"] == "resumed")
        ok(await d.cli("skip"), r"ok: skipped.*")
        await b.user.wait_for(b.topics.event, lambda e: e["type"] == "skipped")
        ok(await d.cli("stop"), r"ok: stopping.*")
        await b.rig.mode(Mode.IDLE, 15)
        finished = await b.user.wait_for(b.topics.event, lambda e: e["type"] == "session_finished")
        assert finished["ended"] == "stopped"

        # idle: pause is refused; stop is answered ok, as a no-op (docs/mqtt.md)
        pause, stop = await asyncio.gather(d.cli("pause"), d.cli("stop"))
        refused(pause, "not_allowed_in_mode")
        ok(stop, r"ok: nothing to stop.*")


# --- status -----------------------------------------------------------------------------------


async def test_status_and_status_json(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d:
        device = d.b.settings.device.id
        idle = await d.cli("status")
        assert idle.code == 0, idle
        assert idle.out.splitlines()[0] == f"{device}: online"
        assert re.search(r"^  mode\s+idle$", idle.out, re.MULTILINE), idle.out
        assert re.search(r"^  program\s+-$", idle.out, re.MULTILINE), idle.out

        assert (await d.b.user.request("start", {"program": PROGRAM}))["ok"]
        await d.b.user.wait_for(d.b.topics.state, lambda s: s["mode"] == "running")
        text, raw = await asyncio.gather(d.cli("status"), d.cli("status", "--json"))
        assert text.code == 0, text
        assert re.search(r"^  mode\s+running$", text.out, re.MULTILINE), text.out
        assert re.search(rf"^  program\s+{PROGRAM}$", text.out, re.MULTILINE), text.out
        assert raw.code == 0, raw
        state = json.loads(raw.out)
        assert state["mode"] == "running"
        assert state["program"] == PROGRAM
        snapshot = d.b.rig.controller.last_snapshot
        assert snapshot is not None
        assert state["session_id"] == snapshot.session_id
        assert set(state) >= {"phase", "target", "actual", "fault"}


@dataclass
class Watching(Output):
    """A `treadctl status --watch` process and its stdout lines so far."""

    lines: list[str] = field(default_factory=list)

    def take(self, line: str) -> None:
        self.lines.append(line.rstrip("\n"))

    async def line(self, check: Any, timeout: float = 15) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if check(line):
                        return line
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def watching(d: Daemon, *args: str) -> AsyncIterator[Watching]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "treadctl", "status", "--watch", *args, "--config", str(d.config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    watch = Watching(proc)
    async with reading(watch, "test.status-watch", kill=True):
        yield watch


async def test_status_watch_follows_a_session_until_sigterm(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d, watching(d) as w:
        stamp = r"\d\d:\d\d:\d\d\.\d "
        await w.line(lambda s: re.match(stamp + "state idle", s))
        await w.line(lambda s: re.match(stamp + "availability online$", s))
        assert (await d.b.user.request("start", {"program": PROGRAM}))["ok"]
        await w.line(lambda s: re.match(rf"{stamp}state running; program {PROGRAM}", s))
        await w.line(
            lambda s: re.match(rf"{stamp}event session_started .*program=\"{PROGRAM}\"", s)
        )
        await w.line(lambda s: re.match(stamp + "event cue: ", s))
        await w.line(lambda s: re.match(stamp + r"telemetry \d+\.\d\d km/h, .* step \d+ \(", s))
        w.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(w.proc.wait(), 10) == 0
        assert w.proc.stderr is not None
        assert await w.proc.stderr.read() == b""


async def test_status_watch_json_until_sigint(broker: Broker, tmp_path: Path) -> None:
    async with daemon(broker, tmp_path) as d, watching(d, "--json") as w:
        base = d.base
        await w.line(lambda s: json.loads(s)["topic"] == f"{base}/state")
        assert (await d.b.user.request("start", {"program": PROGRAM}))["ok"]
        line = await w.line(
            lambda s: (
                (m := json.loads(s))["topic"] == f"{base}/telemetry"
                and m["payload"]["phase_index"] is not None
            )
        )
        assert set(json.loads(line)["payload"]) >= {"speed_kmh", "elapsed_s", "phase_index"}
        await w.line(
            lambda s: (
                (m := json.loads(s))["topic"] == f"{base}/state"
                and m["payload"]["mode"] == "running"
            )
        )
        w.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(w.proc.wait(), 10) == 0
        assert all(set(json.loads(s)) == {"topic", "payload"} for s in w.lines)


# --- failures ---------------------------------------------------------------------------------


async def test_no_daemon_on_that_device_id(broker: Broker, tmp_path: Path) -> None:
    device = f"nobody{secrets.token_hex(3)}"
    config = write_config(
        tmp_path / "treadctl.toml",
        host=broker.host,
        port=broker.port,
        protocol=broker.protocol,
        device=device,
    )
    args = ("--config", str(config), "--timeout", "1")
    stop, status = await asyncio.gather(treadctl("stop", *args), treadctl("status", *args))
    availability = f"treadctl/{device}/availability"
    assert stop.code == 1, stop
    assert stop.out == ""
    assert "no answer to stop within 1 s" in stop.err, stop.err
    assert availability in stop.err, stop.err
    assert 1 <= stop.seconds < 1 + 10, stop  # the wait is bounded by --timeout
    assert status.code == 1, status
    assert f"{device}: offline: nothing retained on treadctl/{device}/state" in status.out
    assert status.seconds < 1 + 10, status


async def test_no_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(
        tmp_path / "treadctl.toml", host="127.0.0.1", port=port, protocol="5", device="nobroker"
    )
    args = ("--config", str(config), "--timeout", "2")
    estop, status, watch = await asyncio.gather(
        treadctl("estop", *args),
        treadctl("status", *args),
        treadctl("status", "--watch", *args),
    )
    for run in (estop, status, watch):
        assert run.code == 1, run
        assert run.out == "", run
        assert re.match(
            rf"treadctl: cannot (connect to|reach) the MQTT broker at 127\.0\.0\.1:{port}", run.err
        ), run
    assert "the emergency stop was NOT sent: use the treadmill's stop button" in estop.err


async def test_a_broken_config_file_is_a_usage_error(tmp_path: Path) -> None:
    cases = {  # file content: what the message must name
        '[mqtt]\nport = "abc"\n': "mqtt.port",
        "[mqtt]\nprot = 1\n": "mqtt.prot",
        "[mqtt\nport = 1\n": "not valid TOML",
    }
    paths = []
    for n, content in enumerate(cases):
        paths.append(tmp_path / f"broken{n}.toml")
        paths[-1].write_text(content)
    missing = tmp_path / "missing.toml"
    runs = await asyncio.gather(
        *(treadctl("stop", "--config", str(p), "--timeout", "1") for p in paths),
        treadctl("status", "--config", str(missing), "--timeout", "1"),
    )
    expected = [*cases.values(), "configuration file not found"]
    for path, run, named in zip([*paths, missing], runs, expected, strict=True):
        assert run.code == 2, run
        assert str(path) in run.err, run
        assert named in run.err, run
        assert run.out == "", run


async def test_malformed_arguments_are_usage_errors(tmp_path: Path) -> None:
    # The configuration names a closed port: exit 2, not 1, shows nothing was tried.
    config = write_config(
        tmp_path / "treadctl.toml",
        host="127.0.0.1",
        port=free_port(),
        protocol="5",
        device="usage",
    )
    c = ("--config", str(config))
    params = ["no_equals", "speed=fast"]
    runs = await asyncio.gather(
        *(treadctl("start", PROGRAM, "--param", p, *c) for p in params),
        treadctl("stop", "--timeout", "0", *c),
    )
    for param, run in zip(params, runs, strict=False):
        assert run.code == 2, run
        assert f"--param {param!r}: use NAME=NUMBER" in run.err, run
    assert runs[-1].code == 2, runs[-1]
    assert "--timeout" in runs[-1].err, runs[-1]
    people = await asyncio.gather(
        treadctl("start", PROGRAM, "--person", "Mrs K", *c),
        treadctl("start", PROGRAM, "--person", "p", "--limit", "max_incline_pct=-1", *c),
        treadctl("start", PROGRAM, "--limit", "speed=2", *c),
        treadctl("start", PROGRAM, "--limit", "fast", *c),
    )
    expected = [
        "--person: a pseudonymous id",
        "--limit max_incline_pct: must be a positive number",
        "--limit: unknown key speed",
        "--limit 'fast': use NAME=NUMBER",
    ]
    for run, message in zip(people, expected, strict=True):
        assert run.code == 2, run
        assert message in run.err, run
