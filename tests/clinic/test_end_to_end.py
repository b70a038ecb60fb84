"""End to end with real processes (issue 18, "What must show"): two simulated treadmills
(`treadctl sim` on ptys), their daemons (`treadctl run`), a real broker and the clinic service
(`treadctl clinic`), on PostgreSQL. (On SQLite, the default, the same path from a session to the
clinic runs in tests/test_demo.py and under systemd in systemd/runtime-check.sh; the data layer
runs on both in every clinic test that takes `database_url`.)

Mrs K. and her prescription are set up through the clinic's web API; starts the clinic must
refuse move nothing; she walks on either treadmill (started by the API and by `treadctl start
--person`), and the treadmills' own reports show the belt in reverse, never faster than her
limit. The clinic service (SIGKILL) and the broker are killed in the middle of a session, which
the daemon ends on its own; once both are back the clinic has every session exactly once and
the daemons' stores say delivered. An annotation, her adherence and her report close it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cli_process import run_treadctl
from waiting import until

from clinic.journey import (
    BROKER_LOSS_S,
    PROGRAM,
    ClinicProcess,
    Treadmill,
    clinic_config,
    clinic_process,
    ended,
    first_admin,
    processes_naming,
    running,
    sessions_of,
    treadmill,
    watching_commands,
    write_program,
)
from clinic.service_rig import Http
from mqtt.brokers import Broker
from mqtt.processes import Sim, simulator, start_daemon
from treadctl.core.units import kmh_to_tenths_mph_floor, tenths_mph_to_kmh
from treadctl.sim.brokers import free_port

pytestmark = pytest.mark.journey  # left out of CI's embedded-broker pass (docs/testing.md)

PERSON = "mrs-k"
NAME = "Karin Example"  # never in the report unless names are asked for
LIMIT_KMH = 1.0  # her max_speed_backward_kmh
SPEED_KMH = 0.9  # her prescribed comfortable backward speed (0.5 mph = 0.805 km/h on the wire)
SET = re.compile(r"set ([+-][0-9.]+) km/h")  # the simulated treadmill's setpoint, signed
PREFIX = "treadctl"
T = TypeVar("T")


async def poll(
    look: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float, what: str
) -> T:
    """`await look()` until `done` says so: the last look; fails naming `what` after
    `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not done(seen := await look()):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
    return seen


async def start_for(http: Http, device: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """POST /api/treadmills/{device}/start, again while the daemon's power-up interlock holds
    (3 s after it started): the answer, and how many starts were sent to the daemon."""
    attempts = 0
    async with asyncio.timeout(30):
        while True:
            attempts += 1
            status, answer = await http.call("POST", f"/api/treadmills/{device}/start", body)
            if status == 200:
                return answer, attempts
            assert status == 502, (status, answer)
            assert answer["error"]["code"] == "interlock_active", answer
            await asyncio.sleep(0.5)


def still(sim: Sim, since: float = 0.0, before: float = float("inf")) -> bool:
    return all(v == 0 for at, _s, _d, v in sim.belt(since) if at < before)


def assert_backward_within_her_limit(sim: Sim, since: float) -> float:
    """What the treadmill received and did: every speed it was set to and every report of a
    moving belt is in reverse and at most her limit, and the belt reached her prescribed speed
    (as the Woodway's wire carries it: whole 0.1 mph, rounded down). The top speed reported."""
    sets = [float(m[1]) for at, line in sim.lines if at >= since and (m := SET.search(line))]
    assert sets, sim.lines
    assert all(v <= 0 and -v <= LIMIT_KMH for v in sets), sets
    moving = [(d, v) for _at, _s, d, v in sim.belt(since) if v > 0]
    assert moving, "the belt never moved"
    assert all(d == "reverse" for d, _ in moving), moving
    top = max(v for _, v in moving)
    # reported when its speed rounded to 0.1 km/h changes: at least 0.05 below the top
    wire = tenths_mph_to_kmh(kmh_to_tenths_mph_floor(SPEED_KMH))
    assert wire - 0.06 <= top <= wire + 0.01, (wire, moving)
    assert top <= LIMIT_KMH
    return top


async def walked(sim: Sim, tm: Treadmill, since: float, count: int) -> dict[str, Any]:
    """The belt ran backward, then the daemon's store holds `count` ended sessions: the last."""
    moved = await sim.until(
        lambda s, d, v, _: s == "running" and d == "reverse" and v > 0, 30, "backward", since
    )
    sessions = await poll(
        lambda: sessions_of(tm.store),
        lambda found: len(found) == count and found[-1]["ended"] is not None,
        60,
        f"session {count} on {tm.device} to end",
    )
    await sim.until(lambda s, _d, v, _l: s == "stopped" and v == 0, 15, "the belt still", moved)
    return sessions[-1]


async def treadctl(*args: str) -> subprocess.CompletedProcess[str]:
    """`treadctl …` as a user runs it, in a thread: the loop goes on reading the simulators."""
    return await asyncio.to_thread(run_treadctl, *args)


async def delivered(tm: Treadmill) -> None:
    """Until the daemon's store says every session of it was delivered (acknowledged)."""
    await poll(
        lambda: sessions_of(tm.store),
        lambda found: all(s["delivered"] is not None for s in found),
        30,
        f"{tm.device}'s sessions marked delivered",
    )


def counts(session: dict[str, Any]) -> bool:
    """Towards her plan: finished, or at least half the planned time (clinic/record.py)."""
    return bool(
        session["ended_how"] == "finished" or session["duration_s"] >= 0.5 * session["planned_s"]
    )


@pytest.mark.timeout(420)  # ~60-90 s; generous for a loaded 2-core machine
async def test_a_person_walks_on_two_treadmills_and_nothing_is_lost(
    own_broker: Broker, postgres_url: str, tmp_path: Path
) -> None:
    database_url = postgres_url
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    programs = tmp_path / "programs"
    write_program(programs)
    a, b = (
        treadmill(tmp_path, own_broker, device, programs=programs, clinic_database=database_url)
        for device in ("tm-a", "tm-b")
    )
    port = free_port()  # the clinic's: the same again when it is restarted
    config = clinic_config(
        tmp_path / "clinic.toml", own_broker, database=database_url, port=port, programs=programs
    )
    await asyncio.to_thread(first_admin, database_url)  # as docs/dashboard.md says
    async with contextlib.AsyncExitStack() as stack:
        clinic: ClinicProcess = await stack.enter_async_context(
            clinic_process(config, port, tmp_path / "clinic.log")
        )
        sim_a = await stack.enter_async_context(simulator(a.link))
        sim_b = await stack.enter_async_context(simulator(b.link))
        daemon_a = await stack.enter_async_context(running(await start_daemon(a.config)))
        daemon_b = await stack.enter_async_context(running(await start_daemon(b.config)))
        await clinic.ready()
        http = await clinic.http.login()  # the admin made with `treadctl users add` above
        timings["up"] = time.monotonic() - t0

        # 1. Mrs K. and her prescription, through the web API
        status, person = await http.call(
            "POST",
            "/api/people",
            {
                "id": PERSON,
                "name": NAME,
                "limits": {"max_speed_backward_kmh": LIMIT_KMH},
                "parameters": {"comfortable_backward_kmh": SPEED_KMH},
            },
        )
        assert status == 201, person
        today = datetime.now(UTC).date()
        status, prescription = await http.call(
            "POST",
            "/api/prescriptions",
            {
                "person": PERSON,
                "program": PROGRAM,
                "parameters": {"comfortable_backward_kmh": SPEED_KMH},
                "sessions_per_week": 3,
                "weeks": 4,
                "start_date": today.isoformat(),
                "progression": {"parameter": "comfortable_backward_kmh", "step_pct": 10},
            },
        )
        assert status == 201, prescription
        sent = {
            "program": PROGRAM,
            "parameters": {"comfortable_backward_kmh": SPEED_KMH},
            "person": PERSON,
            "limits": {"max_speed_backward_kmh": LIMIT_KMH},
        }

        async with watching_commands(own_broker, PREFIX) as watch:
            await until(
                lambda: all(watch.availability.get(d) == "online" for d in ("tm-a", "tm-b")),
                timeout=30,
                what="both daemons online",
            )
            # 2. refused by the clinic: nothing is sent, nothing moves
            status, refused = await http.call(
                "POST", "/api/treadmills/tm-a/start", {"person": "nobody"}
            )
            assert status == 404, refused
            assert "nobody" in refused["error"]["message"]
            status, refused = await http.call(
                "POST",
                "/api/treadmills/tm-b/start",
                {"person": PERSON, "parameters": {"comfortable_backward_kmh": 1.5}},
            )
            assert status == 409, refused
            assert "max_speed_backward_kmh" in refused["error"]["message"], refused
            # the command line resolves in the clinic's database before it sends anything
            done = await treadctl("start", "--person", "nobody", "--config", str(b.config))
            assert done.returncode == 1, done
            assert "nobody" in done.stderr, done

            # 3. a session on tm-a, started through the API...
            first_sent = time.monotonic()
            answer, attempts = await start_for(http, "tm-a", {"person": PERSON})
            assert answer["sent"] == sent, answer
            assert answer["prescription"] == prescription["id"]
            # the barrier: the clinic publishes in order, so once its last start is seen here
            # any start of the refused requests would have been seen before it
            await poll(
                lambda: asyncio.sleep(0),
                lambda _: len(watch.starts()) >= attempts,
                15,
                "the clinic's starts on the broker",
            )
            assert [device for device, _ in watch.starts()] == ["tm-a"] * attempts, watch.seen
            assert all({k: body[k] for k in sent} == sent for _, body in watch.starts()), watch.seen
            assert still(sim_a, before=first_sent), sim_a.belt()
            assert still(sim_b), sim_b.belt()
            one = await walked(sim_a, a, first_sent, 1)
            assert (one["person"], one["ended_how"]) == (PERSON, "finished"), one
            top_a = assert_backward_within_her_limit(sim_a, first_sent)

            # ... and one on tm-b with `treadctl start --person`, resolved in the clinic's
            # database by the command line itself
            second_sent = time.monotonic()
            done = await treadctl("start", "--person", PERSON, "--config", str(b.config))
            assert done.returncode == 0, done
            two = await walked(sim_b, b, second_sent, 1)
            assert (two["person"], two["ended_how"]) == (PERSON, "finished"), two
            top_b = assert_backward_within_her_limit(sim_b, second_sent)
            await poll(
                lambda: asyncio.sleep(0),
                lambda _: watch.starts()[-1][0] == "tm-b",
                15,
                "the command line's start on the broker",
            )
            # ... and only this one on tm-b: the refused starts sent nothing
            assert [d for d, _ in watch.starts()].count("tm-b") == 1, watch.seen
            assert {k: watch.starts()[-1][1][k] for k in sent} == sent, watch.seen
        timings["two sessions"] = time.monotonic() - t0

        # 4. nothing lost: the clinic service and the broker die in the middle of a session
        third_sent = time.monotonic()
        await start_for(http, "tm-a", {"person": PERSON})
        await sim_a.until(
            lambda s, d, v, _: s == "running" and d == "reverse" and v > 0, 30, "moving", third_sent
        )
        killed_at, killed = time.time(), time.monotonic()
        await clinic.kill()
        await own_broker.akill()
        # the daemon is the authority: without its broker it stops the belt (safety.
        # broker_loss_s) and ends the session, while the clinic and the broker are down
        three = await walked(sim_a, a, third_sent, 2)
        assert three["ended"] > killed_at, (three, killed_at)
        assert three["delivered"] is None, three
        assert (three["ended_how"], three["end_cause"]) == ("stopped", "broker_lost"), three
        down_for = time.monotonic() - killed
        assert down_for > BROKER_LOSS_S

        back = time.monotonic()
        await own_broker.astart()  # the same port
        await clinic.start()
        ready = time.monotonic()
        timings["restart"] = ready - back
        stored = await poll(
            lambda: http.call("GET", f"/api/sessions?person={PERSON}"),
            lambda answer: answer[0] == 200 and len(answer[1]) >= 3,
            60,
            "the three sessions in the clinic",
        )
        timings["catch-up"] = time.monotonic() - ready
        sessions = stored[1]
        expected = {one["id"]: "tm-a", two["id"]: "tm-b", three["id"]: "tm-a"}
        assert {s["id"]: s["device_id"] for s in sessions} == expected, sessions
        assert len(sessions) == 3, sessions  # each exactly once
        assert all(s["person_id"] == PERSON for s in sessions), sessions
        assert all(s["prescription_id"] == prescription["id"] for s in sessions), sessions
        interrupted = next(s for s in sessions if s["id"] == three["id"])
        assert interrupted["ended_how"] == "stopped", interrupted
        stop = interrupted["deviations"][0]
        assert (stop["kind"], stop["cause"]) == ("stop", "broker_lost"), interrupted
        for tm in (a, b):
            await delivered(tm)

        # 5. an annotation, and a bad one that names its field and changes nothing
        note = {
            "pain_before": 2,
            "pain_after": 3,
            "exertion_borg": 12,
            "supervised_by": "therapist J.",
            "adverse_events": [{"category": "dizziness", "text": "light-headed after the turn"}],
        }
        path = f"/api/sessions/{one['id']}"
        status, annotated = await http.call("PUT", f"{path}/annotation", note)
        assert status == 200, annotated
        status, shown = await http.call("GET", path)
        assert status == 200, shown
        kept = shown["annotation"]
        assert {k: kept[k] for k in note} == note, kept
        status, bad = await http.call("PUT", f"{path}/annotation", {"pain_after": 11})
        assert status == 400, bad
        assert "pain_after" in bad["error"]["message"], bad
        status, shown = await http.call("GET", path)
        assert shown["annotation"] == kept, shown

        # 6. her record: adherence this week; her report by pseudonym, in HTML and PDF
        status, record = await http.call("GET", f"/api/people/{PERSON}/record")
        assert status == 200, record
        counted = sum(counts(s) for s in record["sessions"])
        assert counted >= 2, record["sessions"]  # the two that finished
        week = record["adherence"][-1]
        this_monday = today - timedelta(days=today.weekday())
        assert week["start"] == this_monday.isoformat(), record["adherence"]
        assert (week["sessions"], week["target"], week["complete"]) == (counted, 3, False), week
        assert len(record["sessions"]) == 3
        report_at = time.monotonic()
        status, page = await http.call("GET", f"/api/people/{PERSON}/report")
        assert status == 200
        html = page.decode()
        assert PERSON in html
        assert f"{counted} sessions done of 3 due so far" in html
        assert NAME not in html
        status, pdf = await http.call("GET", f"/api/people/{PERSON}/report?format=pdf")
        assert status == 200
        assert pdf.startswith(b"%PDF"), pdf[:40]
        timings["report html+pdf"] = time.monotonic() - report_at

        # every process ends cleanly; the clinic's log says what happened, without errors
        assert await clinic.stop() == 0, clinic.tail()
        lines = clinic.log.read_text().splitlines()
        assert all(line.startswith("{") for line in lines), clinic.tail()  # no stray traceback
        log = [json.loads(line) for line in lines]
        assert not [e for e in log if e["level"] in {"error", "critical"}], clinic.tail()
        stored_log = [e["session"] for e in log if e["event"] == "session record stored"]
        assert sorted(set(stored_log)) == sorted(expected), stored_log
        # Alembic's import-time chatter (its plugins) stays out of the service's journal
        assert not [e for e in log if e["logger"].startswith("alembic")], clinic.tail()
        assert await ended(daemon_a) == 0
        assert await ended(daemon_b) == 0
    assert processes_naming(f"{tmp_path}/") == []
    timings["total"] = time.monotonic() - t0
    database = database_url.partition(":")[0]
    print(
        f"\nend to end ({database}, {own_broker.kind}): belt top speeds "
        f"{top_a:.2f}/{top_b:.2f} km/h (limit {LIMIT_KMH}); "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
        file=sys.stderr,
    )
