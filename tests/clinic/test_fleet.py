"""The live overview's tiles (treadctl/clinic/fleet.py), from payloads the daemon's own code
writes (Snapshot.state_dict / telemetry_dict, SessionStarted): discovery, staleness, offline,
the time left, what counts as a change, and malformed payloads that change nothing."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqtt.snapshots import idle_snapshot, running_snapshot
from treadctl.clinic.fleet import STALE_S, Fleet, PayloadError, Tile
from treadctl.control.start_gate import Awaiting, GatedSnapshot
from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.events import SessionStarted
from treadctl.core.state import Event, InputHealth, Mode, Motion, Snapshot

BACK = Motion(1.2, WalkDirection.BACKWARD, BeltDirection.REVERSE, 2.0)
RUNNING = replace(
    running_snapshot(),
    actual=replace(BACK, speed_kmh=1.18),
    phase_remaining_s=28.8,
    elapsed_s=61.2,
    estop_inputs=(InputHealth("mat", "modem-lines", "ok", "closed"),),
    person="mrs-k",
)


def state(snap: Snapshot = RUNNING) -> bytes:
    return json.dumps(snap.state_dict() | {"selected_program": None}).encode()


def telemetry(snap: Snapshot = RUNNING) -> bytes:
    return json.dumps(snap.telemetry_dict()).encode()


def event(e: Event) -> bytes:
    return json.dumps(e.as_dict()).encode()


def started(planned_s: float | None = 600.0) -> bytes:
    parameters = {"comfortable_backward_kmh": 1.2}
    return event(
        SessionStarted(
            ts=1.0,
            session_id="s1",
            program="backward-intervals",
            parameters=parameters,
            planned_s=planned_s,
        )
    )


def live(fleet: Fleet, now: float, device: str = "tm-1") -> Tile:
    fleet.apply(device, "availability", b"online", now, retained=True)
    fleet.apply(device, "state", state(), now, retained=True)
    tile = fleet.apply(device, "telemetry", telemetry(), now)
    assert tile is not None
    return tile


def test_a_device_is_discovered_and_shown_from_state_and_telemetry() -> None:
    fleet = Fleet()
    assert fleet.tiles() == []
    tile = live(fleet, 100.0)
    assert [t.device for t in fleet.tiles()] == ["tm-1"]
    assert tile.online is True
    assert tile.stale is False
    assert tile.last_seen == 100.0
    assert (tile.mode, tile.person, tile.program, tile.phase) == (
        "running",
        "mrs-k",
        "backward-intervals",
        "backward bout",
    )
    assert (tile.walk, tile.belt) == ("backward", "reverse")
    assert (tile.speed_kmh, tile.target_kmh, tile.incline_pct) == (1.18, 1.2, 2.0)
    assert tile.heart_rate_bpm == 96
    assert tile.estop_latched is False
    assert tile.estop_inputs["mat"]["status"] == "ok"
    assert tile.time_left_s == 28.8  # the session's length was not heard: the phase's at least
    data = tile.as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["device"] == "tm-1"
    assert set(data) == {
        "device",
        "online",
        "mode",
        "person",
        "program",
        "phase",
        "walk",
        "belt",
        "speed_kmh",
        "target_kmh",
        "incline_pct",
        "time_left_s",
        "heart_rate_bpm",
        "estop_latched",
        "estop_inputs",
        "awaiting",
        "last_seen",
        "stale",
    }
    assert data["awaiting"] is None


def test_time_left_is_the_planned_length_less_the_time_walked() -> None:
    fleet = Fleet()
    fleet.apply("tm-1", "availability", b"online", 0.0)
    fleet.apply("tm-1", "state", state(replace(RUNNING, mode=Mode.IDLE, session_id=None)), 0.0)
    fleet.apply("tm-1", "event", started(planned_s=600.0), 0.5)
    fleet.apply("tm-1", "state", state(), 0.6)
    tile = fleet.apply("tm-1", "telemetry", telemetry(), 1.0)
    assert tile is not None
    assert tile.time_left_s == 538.8  # 600 - 61.2
    # never less than what is left of the phase (a skip moves the program on, not the clock)
    late = replace(RUNNING, elapsed_s=599.0, phase_remaining_s=20.0)
    tile = fleet.apply("tm-1", "telemetry", telemetry(late), 1.2)
    assert tile is not None
    assert tile.time_left_s == 20.0
    idle = replace(RUNNING, mode=Mode.IDLE, session_id=None, program=None, phase=None)
    tile = fleet.apply("tm-1", "state", state(idle), 1.4)
    assert tile is not None
    assert tile.time_left_s is None
    # a daemon that sends the session's remaining time is taken at its word
    remaining = json.loads(telemetry()) | {"remaining_s": 42.0}
    fleet.apply("tm-1", "state", state(), 1.5)
    tile = fleet.apply("tm-1", "telemetry", json.dumps(remaining).encode(), 1.6)
    assert tile is not None
    assert tile.time_left_s == 42.0


def test_a_quiet_daemon_turns_stale_once_and_fresh_telemetry_brings_it_back() -> None:
    fleet = Fleet()
    live(fleet, 100.0)
    assert fleet.check(100.0 + STALE_S) == []  # exactly STALE_S: not yet
    gone = fleet.check(100.0 + STALE_S + 0.1)
    assert [(t.device, t.stale) for t in gone] == [("tm-1", True)]
    assert fleet.check(100.0 + STALE_S + 0.6) == []  # reported once
    assert fleet.tiles()[0].stale is True
    back = fleet.apply("tm-1", "telemetry", telemetry(), 104.0)
    assert back is not None
    assert back.stale is False


def test_offline_is_stale_at_once_and_keeps_the_last_values() -> None:
    fleet = Fleet()
    live(fleet, 100.0)
    tile = fleet.apply("tm-1", "availability", b"offline", 100.2)
    assert tile is not None
    assert (tile.online, tile.stale) == (False, True)
    assert tile.mode == "running"  # what it last said, marked stale
    # telemetry from a daemon the broker still calls offline does not make it live
    assert fleet.apply("tm-1", "telemetry", telemetry(), 100.3) is None
    assert fleet.tiles()[0].stale is True
    tile = fleet.apply("tm-1", "availability", b"online", 101.0)
    assert tile is not None
    assert tile.stale is False  # online, and telemetry came 0.7 s ago


def test_retained_state_alone_is_not_live() -> None:
    """The retained state a subscriber gets may be old: shown, but stale until telemetry."""
    fleet = Fleet()
    fleet.apply("tm-1", "availability", b"online", 0.0, retained=True)
    tile = fleet.apply("tm-1", "state", state(), 0.0, retained=True)
    assert tile is not None
    assert tile.mode == "running"
    assert (tile.last_seen, tile.stale) == (None, True)
    tile = fleet.apply("tm-1", "telemetry", telemetry(), 0.1)
    assert tile is not None
    assert (tile.last_seen, tile.stale) == (0.1, False)


def test_only_changes_count_and_last_seen_alone_is_none() -> None:
    fleet = Fleet()
    live(fleet, 100.0)
    for i in range(10):  # an idle treadmill's telemetry at 5 Hz: nothing new to show
        assert fleet.apply("tm-1", "telemetry", telemetry(), 100.2 + i * 0.2) is None
    assert fleet.tiles()[0].last_seen == pytest.approx(102.0)
    faster = fleet.apply("tm-1", "telemetry", telemetry(replace(RUNNING, actual=BACK)), 102.2)
    assert faster is not None
    assert faster.speed_kmh == 1.2
    # a telemetry message that leaves a field out keeps the value the tile has
    partial = json.dumps({"ts": 1.0, "heart_rate_bpm": 97}).encode()
    tile = fleet.apply("tm-1", "telemetry", partial, 102.4)
    assert tile is not None
    assert (tile.speed_kmh, tile.heart_rate_bpm) == (1.2, 97)


def test_the_estop_event_latches_the_tile_before_the_state_says_so() -> None:
    fleet = Fleet()
    live(fleet, 100.0)
    tile = fleet.apply("tm-1", "event", event(Event("estop", 1.0, "s-1", {"cause": "command"})), 1)
    assert tile is not None
    assert (tile.estop_latched, tile.mode) == (True, "estop")
    latched = replace(RUNNING, mode=Mode.ESTOP, actual=replace(BACK, speed_kmh=0.0))
    tile = fleet.apply("tm-1", "state", state(latched), 100.5)
    assert tile is not None
    assert (tile.estop_latched, tile.speed_kmh) == (True, 0.0)
    tile = fleet.apply("tm-1", "state", state(replace(latched, mode=Mode.IDLE)), 100.6)
    assert tile is not None
    assert tile.estop_latched is False


def test_signed_speeds_are_shown_unsigned() -> None:
    fleet = Fleet()
    live(fleet, 0.0)
    body = json.loads(telemetry()) | {"speed_kmh": -1.5}
    tile = fleet.apply("tm-1", "telemetry", json.dumps(body).encode(), 0.1)
    assert tile is not None
    assert tile.speed_kmh == 1.5


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("availability", b"maybe", "availability"),
        ("state", b"\xff\xfe", "state: not JSON"),
        ("state", b"[1, 2]", "state: not a JSON object"),
        ("state", b'{"mode": "flying"}', "state.mode"),
        ("state", json.dumps(json.loads(state()) | {"person": 7}).encode(), "state.person"),
        ("state", json.dumps(json.loads(state()) | {"target": [1]}).encode(), "state.target"),
        (
            "state",
            json.dumps(json.loads(state()) | {"estop_inputs": {"mat": "ok"}}).encode(),
            "state.estop_inputs",
        ),
        ("telemetry", b'{"speed_kmh": "fast"}', "telemetry.speed_kmh"),
        ("telemetry", b'{"speed_kmh": 1.0, "heart_rate_bpm": true}', "heart_rate_bpm"),
        ("telemetry", b'{"speed_kmh": 1.0, "belt": 3}', "telemetry.belt"),
        ("telemetry", b'{"speed_kmh": 1.0, "elapsed_s": "x"}', "telemetry.elapsed_s"),
        ("telemetry", b'{"speed_kmh": NaN}', "telemetry.speed_kmh"),
        ("event", b'{"type": 5}', "event.type"),
        ("event", b"", "event: not JSON"),
        ("event", b"[" * 100_000, "event: not JSON"),
    ],
)
def test_a_malformed_payload_names_the_field_and_changes_nothing(
    kind: str, payload: bytes, field: str
) -> None:
    fleet = Fleet()
    before = live(fleet, 100.0)
    with pytest.raises(PayloadError, match=field.replace(".", r"\.")):
        fleet.apply("tm-1", kind, payload, 100.1)
    assert fleet.tiles() == [before]


HELD = Awaiting("button", ("box",), "backward-intervals", "mrs-k", 54)


def held_state(awaiting: Awaiting | None) -> bytes:
    return state(GatedSnapshot.of(idle_snapshot(), awaiting))


def test_a_start_waiting_for_confirmation_is_said_on_the_tile_and_goes_with_it() -> None:
    fleet = Fleet()
    live(fleet, 100.0)
    tile = fleet.apply("tm-1", "state", held_state(HELD), 100.1)
    assert tile is not None
    assert tile.mode == "idle"
    assert tile.awaiting == (
        "waiting for the start of backward-intervals to be confirmed at the treadmill "
        "(GO on the button box), 54 s left"
    )
    later = fleet.apply("tm-1", "state", held_state(replace(HELD, expires_s=53)), 101.1)
    assert later is not None  # the seconds left count down: a change the page is sent
    assert str(later.awaiting).endswith(", 53 s left")
    manual = fleet.apply("tm-1", "state", held_state(replace(HELD, program="manual")), 101.2)
    assert manual is not None
    assert str(manual.awaiting).startswith("waiting for the start of a manual session")
    gone = fleet.apply("tm-1", "state", held_state(None), 101.3)
    assert gone is not None
    assert gone.awaiting is None
    # A daemon without the rule (no `awaiting` in its state) waits for nothing.
    assert fleet.apply("tm-1", "state", state(), 101.4) is not None
    assert fleet.tiles()[0].awaiting is None


@pytest.mark.parametrize(
    ("awaiting", "field"),
    [
        ("[1]", "state.awaiting: an object"),
        ('{"program": 3}', "state.awaiting.program"),
        ('{"confirm": "button", "expires_s": "soon"}', "state.awaiting.expires_s"),
        ('{"confirm": 1}', "state.awaiting.confirm"),
    ],
)
def test_a_malformed_awaiting_names_the_field_and_changes_nothing(
    awaiting: str, field: str
) -> None:
    fleet = Fleet()
    before = live(fleet, 100.0)
    payload = json.loads(held_state(None))
    payload["awaiting"] = json.loads(awaiting)
    with pytest.raises(PayloadError, match=field.replace(".", r"\.")):
        fleet.apply("tm-1", "state", json.dumps(payload).encode(), 100.1)
    assert fleet.tiles() == [before]


def test_the_clinic_service_and_unknown_kinds_are_not_treadmills() -> None:
    fleet = Fleet()
    assert fleet.apply("clinic", "availability", b"online", 0.0) is None
    assert fleet.apply("tm-1", "record", b"{}", 0.0) is None
    assert fleet.tiles() == []
    # a cleared retained availability: nothing known about it any more
    live(fleet, 0.0)
    tile = fleet.apply("tm-1", "availability", b"", 0.1)
    assert tile is not None
    assert tile.online is None
    assert tile.stale is False  # telemetry 0.1 s ago: it is talking


def test_many_devices_are_kept_apart_and_listed_in_order() -> None:
    fleet = Fleet()
    for device in ("tm-3", "tm-1", "tm-2"):
        live(fleet, 0.0, device)
    fleet.apply("tm-2", "availability", b"offline", 0.1)
    tiles = fleet.tiles()
    assert [t.device for t in tiles] == ["tm-1", "tm-2", "tm-3"]
    assert [t.stale for t in tiles] == [False, True, False]
    assert sorted(t.device for t in fleet.check(10.0)) == ["tm-1", "tm-3"]


def test_the_number_of_treadmills_is_bounded() -> None:
    fleet = Fleet(max_devices=3)
    for device in ("tm-1", "tm-2", "tm-3"):
        live(fleet, 0.0, device)
    with pytest.raises(PayloadError, match="more than 3 treadmills"):
        fleet.apply("tm-4", "telemetry", telemetry(), 0.1)
    assert [t.device for t in fleet.tiles()] == ["tm-1", "tm-2", "tm-3"]
    assert fleet.apply("tm-1", "availability", b"offline", 0.2) is not None  # known ones go on


def test_a_malformed_session_start_leaves_the_time_left_as_it_was() -> None:
    fleet = Fleet()
    fleet.apply("tm-1", "event", started(planned_s=600.0), 0.0)
    live(fleet, 0.1)
    assert fleet.tiles()[0].time_left_s == 538.8
    bad = json.loads(started()) | {"session_id": "s2", "planned_s": "long"}
    with pytest.raises(PayloadError, match=r"event\.planned_s"):
        fleet.apply("tm-1", "event", json.dumps(bad).encode(), 0.2)
    tile = fleet.apply("tm-1", "telemetry", telemetry(replace(RUNNING, elapsed_s=100.0)), 0.3)
    assert tile is not None
    assert tile.time_left_s == 500.0  # still s1's 600 s
