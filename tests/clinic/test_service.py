"""The clinic service on a real broker and a real database (SQLite and PostgreSQL): it says it
is there, stores and acks session records (each once), refuses malformed ones without an ack,
serves its web API, and says `offline` when it stops."""

from __future__ import annotations

import secrets
import socket
from datetime import UTC, datetime
from typing import Any

from waiting import until

from clinic.documents import session_document
from clinic.service_rig import clinic_settings, daemon_link, running_clinic
from mqtt.brokers import Broker

STARTED = datetime(2025, 12, 1, 10, 0, tzinfo=UTC)  # a Monday


def document(session_id: str, **more: Any) -> dict[str, Any]:
    return session_document(session_id, started=STARTED, **more)


def _prefix() -> str:
    return f"t{secrets.token_hex(3)}"


async def test_records_are_stored_once_and_acked(broker: Broker, database_url: str) -> None:
    prefix = _prefix()
    settings = clinic_settings(broker, database_url, prefix)
    async with running_clinic(settings) as clinic, daemon_link(broker, prefix, "tm-1") as daemon:
        await until(lambda: "online" in daemon.availability, what="clinic online")
        first = document("s-1", duration_s=600, speed_kmh=1.2)
        await daemon.send(first)
        await daemon.send(first)  # an ack lost: the daemon sends it again
        await daemon.send(document("s-2", duration_s=300, ended_how="stopped"))
        await daemon.wait_ack("s-1")
        await daemon.wait_ack("s-2")
        await until(lambda: daemon.acks.count("s-1") == 2, what="the second ack of s-1")

        status, sessions = await clinic.http.call("GET", "/api/sessions?person=mrs-k")
        assert status == 200
        assert [s["id"] for s in sessions] == ["s-1", "s-2"]
        one = sessions[0]
        assert one["device_id"] == "tm-1"
        assert one["duration_s"] == 600.0
        assert one["backward_s"] == 599.0  # the first second starts from standstill
        assert one["speed_backward_avg_kmh"] == 1.2
        assert abs(one["distance_m"] - 1.2 / 3.6 * 600) < 0.01
        assert [d["kind"] for d in sessions[1]["deviations"]] == ["stop"]
        assert sessions[1]["ended_how"] == "stopped"
        assert clinic.service.broker is not None
        assert clinic.service.broker.records_stored == 3


async def test_a_malformed_record_is_not_acked_and_changes_nothing(
    broker: Broker, database_url: str
) -> None:
    prefix = _prefix()
    settings = clinic_settings(broker, database_url, prefix)
    async with running_clinic(settings) as clinic, daemon_link(broker, prefix, "tm-1") as daemon:
        await until(lambda: "online" in daemon.availability, what="clinic online")
        bad_person = document("s-bad")
        bad_person["session"]["person"] = "Mrs K"
        not_ended = document("s-running")
        not_ended["session"]["ended"] = None
        for payload in (
            b"\xff\xfe not json",
            b"[1, 2]",
            {"format": "other"},
            bad_person,
            not_ended,
        ):
            await daemon.send(payload)
        await daemon.send(document("s-good"))
        await daemon.wait_ack("s-good")  # sent last: the bad ones were handled before it
        assert daemon.acks == ["s-good"]
        status, sessions = await clinic.http.call("GET", "/api/sessions")
        assert status == 200
        assert [s["id"] for s in sessions] == ["s-good"]
        assert clinic.service.broker is not None
        assert clinic.service.broker.records_rejected == 5


async def test_availability_is_retained_online_then_offline(
    mqtt5_broker: Broker, database_url: str
) -> None:
    # mosquitto whatever TREADCTL_TEST_BROKER says: the embedded broker did not hand this
    # retained message to a client that subscribed later
    broker, prefix = mqtt5_broker, _prefix()
    settings = clinic_settings(broker, database_url, prefix)
    async with running_clinic(settings) as clinic:
        link = clinic.service.broker
        assert link is not None
        await until(link.connected.is_set, what="the service connected and said online")
        async with daemon_link(broker, prefix, "tm-1") as daemon:
            # subscribed after the service published: the retained message tells
            await until(lambda: daemon.availability == ["online"], what="retained online")
        assert await clinic.stop() == 0
    async with daemon_link(broker, prefix, "tm-1") as late:
        await until(lambda: late.availability == ["offline"], what="retained offline")


async def test_the_api_keeps_people_and_refuses_bad_input(
    broker: Broker, database_url: str
) -> None:
    prefix = _prefix()
    async with running_clinic(clinic_settings(broker, database_url, prefix)) as clinic:
        call = clinic.http.call
        status, body = await call(
            "POST", "/api/people", {"id": "mrs-k", "limits": {"max_speed_backward_kmh": 1.5}}
        )
        assert status == 201, body
        status, body = await call(
            "POST", "/api/people", {"id": "Mrs K", "limits": {"max_speed_backward_kmh": 9}}
        )
        assert status == 400
        assert "id:" in body["error"]["message"]
        assert "limits.max_speed_backward_kmh" in body["error"]["message"]
        status, body = await call("POST", "/api/people", {"id": "mrs-k"})
        assert status == 409
        status, body = await call(
            "POST",
            "/api/prescriptions",
            {
                "person": "mrs-k",
                "program": "chang2021-stroke",
                "parameters": {"comfortable_backward_kmh": 2.0},
                "sessions_per_week": 3,
                "weeks": 4,
                "start_date": "2025-12-01",
            },
        )
        assert status == 409
        assert "max_speed_backward_kmh = 1.5" in body["error"]["message"]
        status, body = await call("GET", "/api/people/nobody")
        assert status == 404
        status, people = await call("GET", "/api/people")
        assert [p["id"] for p in people] == ["mrs-k"]
        assert people[0]["limits"] == {"max_speed_backward_kmh": 1.5}
        status, body = await call("PUT", "/api/sessions/none/annotation", {"pain_after": 11})
        assert status == 400  # the form is checked first, naming the field
        assert "pain_after" in body["error"]["message"]


def test_connections_to_the_service_have_nagle_off() -> None:
    from treadctl.clinic.service import listen  # noqa: PLC0415

    server = listen("127.0.0.1", 0)
    with server, socket.create_connection(server.getsockname()[:2], timeout=5):
        accepted, _ = server.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
