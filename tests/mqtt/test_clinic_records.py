"""The daemon's side of "nothing lost" (issue 18): every ended session reaches the clinic service
over MQTT (`…/record`, acknowledged on `…/record/ack`), sent only while the clinic's retained
availability says `online`, again after the clinic restarts, and never in the way of the e-stop.

The daemon runs in-process on the simulated Woodway treadmill over a real pty (the stop byte is
read off the wire), with a real broker and a real SQLite file; the test plays the clinic service
with a plain MQTT client. Each test has its own `mqtt.prefix`, so the clinic's retained status
stays its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import waiting
from store.synth import PhaseSpec, record, synthesise
from structlog.testing import capture_logs

from control.rig import Rig
from mqtt.brokers import MOSQUITTO, Broker, mosquitto_broker
from mqtt.harness import User, settings_for, user_client
from treadctl.control.controller import Controller
from treadctl.core.state import Mode
from treadctl.daemon.wiring import Daemon
from treadctl.drivers.trackmaster_codec import Op
from treadctl.mqtt.bridge import MqttBridge
from treadctl.mqtt.records import RecordShipper
from treadctl.mqtt.topics import Topics
from treadctl.sim.pty_server import SimulatedTreadmill
from treadctl.store import SessionStore
from treadctl.store.schema import open_readonly, open_writer

DEVICE = "treadmill"  # store.synth.record's device
T0 = 1_795_511_700.0
SHORT = [PhaseSpec("backward", "backward", 1.2, 30)]


@dataclass
class Running:
    rig: Rig  # the daemon's controller on the pty (for the wire and the mode)
    daemon: Daemon
    records: RecordShipper
    user: User  # the clinic service and the therapist, one client: all under the device's base
    topics: Topics
    db: Path
    finished_before: set[str]

    def received(self) -> list[bytes]:
        """The record payloads seen so far, unparsed (parsing 20 long ones on every look would
        hold up the loop the daemon runs in)."""
        out = []
        for message in self.user.messages:
            if message.topic.value == self.topics.record:
                assert isinstance(message.payload, bytes)
                out.append(message.payload)
        return out

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(payload) for payload in self.received()]

    async def records_seen(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await self.payloads_seen(n, timeout)
        return self.documents()

    async def payloads_seen(self, n: int, timeout: float) -> list[bytes]:
        await waiting.until(
            lambda: len(self.received()) >= n, timeout=timeout, what=f"{n} records", step=0.02
        )
        return self.received()

    async def clinic(self, status: str) -> None:
        """The clinic service's retained availability (its last will would say `offline`)."""
        await self.user.client.publish(
            self.topics.clinic_availability, status.encode(), qos=1, retain=True
        )

    async def ack(self, payload: bytes | str) -> None:
        await self.user.client.publish(self.topics.record_ack, payload, qos=1)

    async def ack_session(self, session_id: str) -> None:
        await self.ack(json.dumps({"session": session_id}))

    def delivered(self) -> dict[str, float | None]:
        with closing(open_readonly(self.db)) as conn:
            return dict(conn.execute("SELECT id, delivered FROM sessions").fetchall())

    async def until_delivered(self, ids: list[str], timeout: float = 5.0) -> None:
        await waiting.until(
            lambda: all(self.delivered().get(i) is not None for i in ids),
            timeout=timeout,
            what=f"{ids} marked delivered in the file",
            step=0.05,
        )

    async def walk(self, person: str = "mrs-k") -> str:
        """A short manual session of `person`, ended by `stop`: its id once it has ended."""
        async with asyncio.timeout(15):
            while True:  # the power-up interlock refuses a start for its first 3 s
                answer = await self.user.request(
                    "set", {"speed_kmh": 1.0, "walk": "forward", "person": person}
                )
                if answer["ok"]:
                    break
                assert answer["error"]["code"] == "interlock_active", answer
                await asyncio.sleep(0.2)
        await self.rig.until(lambda: self.rig.sim.belt.speed_kmh > 0.5, 10, "the belt at speed")
        assert (await self.user.request("stop"))["ok"]
        done = await self.user.wait_for(
            self.topics.event,
            lambda e: e["type"] == "session_finished" and e["person"] == person
            and e["session_id"] not in self.finished_before,
            15,
        )  # fmt: skip
        self.finished_before.add(done["session_id"])
        await self.rig.mode(Mode.IDLE, 15)
        return str(done["session_id"])


async def history(db: Path, count: int, *, duration_s: int = 30, rate_hz: float = 1.0) -> list[str]:
    """`count` ended sessions recorded before the daemon starts (no clinic was there): their ids,
    oldest first. Made up in a loop of their own: thousands of samples would hold up this one."""
    return await asyncio.to_thread(
        asyncio.run, _history(db, count, duration_s=duration_s, rate_hz=rate_hz)
    )


async def _history(db: Path, count: int, *, duration_s: int, rate_hz: float) -> list[str]:
    store = SessionStore(db, max_queued_samples=10_000)
    await store.start()
    ids = []
    try:
        for n in range(count):
            session_id = f"old-{n:02d}"
            walk = [PhaseSpec("backward", "backward", 1.2, duration_s)]
            synth = synthesise(session_id, T0 + 3600 * n, walk, rate_hz=rate_hz)
            record(store, synth, program="manual", person="mr-b")
            await store.wait_flushed()  # within the store's backlog
            ids.append(session_id)
    finally:
        await store.close()
    return ids


@contextlib.asynccontextmanager
async def running(
    broker: Broker,
    tmp_path: Path,
    *,
    resend_s: float = 60.0,
    before: int = 0,
    clinic: str | None = None,
    safety: dict[str, Any] | None = None,
) -> AsyncIterator[Running]:
    """The daemon on the simulated treadmill, the clinic client connected; `before` sessions in
    its file from an earlier run; `clinic`: the clinic's retained status before the daemon
    starts."""
    db = tmp_path / "sessions.db"
    if before:
        await history(db, before)
    async with SimulatedTreadmill("woodway") as sim:
        settings = settings_for(
            broker,
            device={"id": DEVICE, "driver": "woodway", "port": sim.path},
            mqtt={"prefix": f"p{secrets.token_hex(4)}"},
            storage={"path": str(db)},
            safety=safety or {},
        )
        topics = Topics.from_settings(settings)
        daemon = Daemon(settings, record_resend_s=resend_s)
        ready: asyncio.Queue[tuple[Controller, MqttBridge]] = asyncio.Queue()
        async with user_client(broker, topics) as user:
            if clinic is not None:
                await user.client.publish(
                    topics.clinic_availability, clinic.encode(), qos=1, retain=True
                )
            task = asyncio.create_task(
                daemon.run(lambda c, b: ready.put_nowait((c, b))), name="test.daemon"
            )
            try:
                controller, bridge = await asyncio.wait_for(ready.get(), 15)
                await asyncio.wait_for(bridge.connected.wait(), 10)
                await user.wait_for(topics.availability, lambda p: p == "online", 10)
                assert daemon.records is not None
                rig = Rig(sim, controller.driver, controller, task)  # type: ignore[arg-type]
                yield Running(rig, daemon, daemon.records, user, topics, db, set())
            finally:
                daemon.stop.set()
                try:
                    assert await asyncio.wait_for(task, 25) == 0
                finally:
                    # the clinic's retained status is this test's own: leave none behind (a
                    # test that restarted the broker has none, and this client's link is gone)
                    with contextlib.suppress(aiomqtt.MqttError):
                        await user.client.publish(
                            topics.clinic_availability, b"", qos=1, retain=True
                        )


def valid(document: dict[str, Any], session_id: str, person: str) -> None:
    """What the clinic service relies on in a record."""
    assert (document["format"], document["version"]) == ("treadctl-session", 1)
    session = document["session"]
    assert (session["id"], session["person"], session["device_id"]) == (session_id, person, DEVICE)
    assert session["ended"] is not None
    assert document["samples"], "a record carries the session's samples"
    assert {"phases", "events"} <= document.keys()


async def test_a_session_that_ends_while_the_clinic_is_online_arrives_once_and_an_ack_marks_it(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path) as r:
        await r.clinic("online")
        session_id = await r.walk("mrs-k")
        (document,) = await r.records_seen(1)
        valid(document, session_id, "mrs-k")
        assert any(s["speed_kmh"] > 0 for s in document["samples"])
        assert r.delivered() == {session_id: None}  # kept, not delivered until acknowledged
        acked_at = time.time()
        await r.ack_session(session_id)
        await r.until_delivered([session_id])
        assert acked_at - 1 <= (r.delivered()[session_id] or 0) <= time.time()
        assert (await r.user.request("heartbeat"))["ok"]  # a round trip after the ack
        assert len(r.received()) == 1, "one record per session"
        assert r.records.sent == 1


async def test_sessions_recorded_without_a_clinic_are_sent_when_it_comes_online_and_not_before(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path, before=3) as r:
        await r.clinic("offline")
        live = await r.walk("mrs-k")  # ends while the clinic is offline
        assert r.daemon.store is not None
        await r.daemon.store.wait_flushed()  # its end is in the file: the sender was woken
        with pytest.raises(AssertionError, match="timed out"):
            await r.records_seen(1, timeout=1.5)  # nothing while the clinic is offline
        assert r.records.sent == 0
        await r.clinic("online")  # retained, as the clinic service publishes it
        documents = await r.records_seen(4)
        # oldest first, one each
        assert [d["session"]["id"] for d in documents] == ["old-00", "old-01", "old-02", live]
        for document in documents[:3]:
            valid(document, document["session"]["id"], "mr-b")
        valid(documents[3], live, "mrs-k")
        for document in documents:
            await r.ack_session(document["session"]["id"])
        await r.until_delivered(["old-00", "old-01", "old-02", live])


async def test_the_retained_online_at_connect_and_a_restarted_clinic_gets_the_unacked_again(
    broker: Broker, tmp_path: Path
) -> None:
    ids = await history(tmp_path / "sessions.db", 2)
    async with running(broker, tmp_path) as r:
        await r.clinic("online")
        await r.records_seen(2)
        await r.ack_session(ids[0])
        await r.until_delivered([ids[0]])
    # the daemon again: the clinic's retained `online` is there before it connects
    async with running(broker, tmp_path, clinic="online") as r:
        (again,) = await r.records_seen(1)
        assert again["session"]["id"] == ids[1]  # what was acknowledged is not sent again
        # the clinic restarts without acknowledging: `offline` (its last will), `online` again
        await r.clinic("offline")
        await r.clinic("online")
        documents = await r.records_seen(2)
        assert [d["session"]["id"] for d in documents] == [ids[1], ids[1]]
        await r.ack_session(ids[1])
        await r.ack_session(ids[1])  # a re-ack is harmless
        await r.until_delivered(ids)
        assert r.records.sent == 2


async def test_a_session_that_ends_while_the_clinic_and_the_broker_are_down_arrives_when_back(
    own_broker: Broker, tmp_path: Path
) -> None:
    async with running(own_broker, tmp_path, safety={"broker_loss_s": 1.0}) as r:
        await r.clinic("online")
        async with asyncio.timeout(15):
            while not (await r.user.request("set", {"speed_kmh": 1.0, "person": "mrs-k"}))["ok"]:
                await asyncio.sleep(0.2)  # the power-up interlock
        await r.rig.until(lambda: r.rig.sim.belt.speed_kmh > 0.8, 10, "at speed")
        session_id = r.rig.controller.session.id if r.rig.controller.session else None
        await r.clinic("offline")  # the clinic service goes (its last will says so)
        await own_broker.akill()  # and the broker, mid-session
        # safety.broker_loss_s = 1: a controlled stop ends the session while both are down
        await r.rig.mode(Mode.IDLE, 15)
        assert r.daemon.store is not None
        await r.daemon.store.wait_flushed()
        assert r.delivered() == {session_id: None}
        assert r.records.sent == 0
        await own_broker.astart()  # a fresh broker: no retained status, the clinic unknown
        bridge = r.daemon.bridge
        assert bridge is not None
        await r.rig.until(lambda: bridge.connections >= 2, 15, "reconnected")
        async with user_client(own_broker, r.topics) as clinic:
            back = dataclasses.replace(r, user=clinic)
            assert (await clinic.request("heartbeat"))["ok"]  # subscribed again
            assert back.received() == []  # nothing before the clinic says it is there
            await back.clinic("online")  # the clinic service is back
            (document,) = await back.records_seen(1)
            valid(document, str(session_id), "mrs-k")
            assert (document["session"]["ended_how"], document["session"]["end_cause"]) == (
                "stopped",
                "broker_lost",
            )
            await back.ack_session(str(session_id))
            await back.until_delivered([str(session_id)])
            await clinic.client.publish(r.topics.clinic_availability, b"", qos=1, retain=True)


async def test_a_session_deleted_while_records_are_sent_is_skipped(
    broker: Broker, tmp_path: Path
) -> None:
    ids = await history(tmp_path / "sessions.db", 3, duration_s=1200, rate_hz=5)
    async with running(broker, tmp_path) as r:
        await r.clinic("online")
        await r.rig.until(lambda: r.records.sent >= 1, 15, "the first record sent")
        # the second is being read and encoded (a fraction of a second): the third goes, as
        # `sessions delete --person` would take it, before the sender comes to it
        with closing(open_writer(r.db)) as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (ids[2],))
        payloads = await r.payloads_seen(2, timeout=15)
        assert [session_of(p) for p in payloads] == ids[:2]
        for session_id in ids[:2]:
            await r.ack_session(session_id)
        await r.until_delivered(ids[:2])
        assert r.records.sent == 2
        assert len(r.received()) == 2


async def test_an_unacknowledged_record_is_sent_again_every_resend_interval(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path, resend_s=0.5, before=1) as r:
        await r.clinic("online")
        t0 = time.monotonic()
        documents = await r.records_seen(3, timeout=5)  # the first, and two resends
        assert time.monotonic() - t0 >= 2 * 0.5
        assert {d["session"]["id"] for d in documents} == {"old-00"}
        await r.ack_session("old-00")
        await r.until_delivered(["old-00"])
        sent = r.records.sent
        with pytest.raises(AssertionError, match="timed out"):  # acknowledged: no more
            await waiting.until(lambda: r.records.sent > sent + 1, timeout=1.5, what="a resend")


async def test_malformed_acks_change_nothing_are_logged_and_the_daemon_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path, before=2) as r:
        await r.clinic("online")
        await r.records_seen(2)
        bad: list[tuple[bytes | str, str]] = [
            (b"\xff not json", "not JSON"),
            ("[1, 2]", "not a JSON object"),
            ('{"session": 5}', "'session' must be a session id"),
            ('{"id": "old-00"}', "'session' must be a session id"),
            ('{"session": ""}', "'session' must be a session id"),
            ("x" * 2000, "longer than 1024 bytes"),
            ('{"session": "no-such-session"}', "no session 'no-such-session'"),
        ]
        with capture_logs() as logs:
            for payload, reason in bad:
                await r.ack(payload)

                def named(reason: str = reason) -> bool:
                    return any(
                        e["event"] == "record ack ignored" and reason in str(e["reason"])
                        for e in logs
                    )

                await waiting.until(named, timeout=3, what=f"the log naming {reason!r}")
                assert (await r.user.request("heartbeat"))["ok"]  # the daemon goes on
        ignored = [e for e in logs if e["event"] == "record ack ignored"]
        assert len(ignored) == len(bad)
        # a warning, then (a flood must not flood the log) debug lines for 10 s; an unknown
        # session is a warning of its own
        assert [e["log_level"] for e in ignored] == ["warning", *["debug"] * 5, "warning"]
        assert r.delivered() == {"old-00": None, "old-01": None}  # nothing changed
        assert r.daemon.bridge is not None
        assert r.daemon.bridge.connections == 1  # nothing dropped the connection
        await r.ack_session("old-01")  # and a good ack still marks
        await r.until_delivered(["old-01"])
        assert r.delivered()["old-00"] is None


def session_of(payload: bytes) -> str:
    """The session id near the start of a record, without parsing a megabyte on the loop."""
    found = re.search(rb'"session":\{"id":"([^"]+)"', payload[:200])
    assert found is not None, payload[:200]
    return found[1].decode()


@pytest.fixture
def nodelay_broker(
    own_broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """mosquitto as docs/mqtt.md recommends it (`set_tcp_nodelay true`: with mosquitto's
    default, a message to the daemon can wait up to ~40 ms behind the broker's unacknowledged
    PUBACKs, and this daemon is busy publishing); the embedded broker where that is the one."""
    if own_broker.protocol == "3.1.1" or MOSQUITTO is None:
        yield own_broker
        return
    broker = mosquitto_broker(tmp_path_factory.mktemp("nodelay"), nodelay=True).start()
    try:
        yield broker
    finally:
        broker.kill()


async def test_the_estop_stops_the_belt_while_20_records_are_being_sent(
    nodelay_broker: Broker, tmp_path: Path
) -> None:
    broker = nodelay_broker
    await history(tmp_path / "sessions.db", 20, duration_s=1200, rate_hz=5)  # 1.2 MB records
    async with running(broker, tmp_path) as r:
        async with asyncio.timeout(15):
            while True:  # the power-up interlock refuses a start for its first 3 s
                answer = await r.user.request("set", {"speed_kmh": 2.0, "walk": "backward"})
                if answer["ok"]:
                    break
                assert answer["error"]["code"] == "interlock_active", answer
                await asyncio.sleep(0.2)
        await r.rig.until(lambda: r.rig.sim.belt.speed_kmh < -1.5, 15, "at speed, in reverse")
        await r.clinic("online")
        await r.rig.until(lambda: r.records.sent >= 1, 15, "the first record sent")
        assert r.records.sent < 20, "records still to send"
        t0 = time.monotonic()
        await r.user.send_raw("estop", b"")
        await r.rig.mode(Mode.ESTOP, 2)
        await r.rig.until(lambda: Op.STOP in r.rig.ops_since(t0), 2, "the stop byte on the wire")
        stop = next(
            x.at
            for x in r.rig.sim.wire.requests
            if x.at >= t0 and getattr(x.request, "op", None) == Op.STOP
        )
        print(
            f"\ne-stop with records being sent ({r.records.sent} of 20 so far): MQTT publish ->"
            f" stop byte at the treadmill {1000 * (stop - t0):.1f} ms",
            file=sys.stderr,
        )
        await r.rig.until(lambda: r.rig.sim.belt.still, 10, "belt still")
        ended = await r.user.wait_for(
            r.topics.event, lambda e: e["type"] == "session_finished" and e["ended"] == "estop"
        )
        # all of them, and then the session the e-stop ended (its end woke the sender)
        payloads = await r.payloads_seen(21, timeout=90)
        old = [f"old-{n:02d}" for n in range(20)]
        assert [session_of(p) for p in payloads] == [*old, ended["session_id"]]
        assert min(len(p) for p in payloads[:20]) > 1_000_000
