"""Snapshots and topics built by hand, for tests of payloads and discovery templates."""

from __future__ import annotations

import dataclasses

from treadctl.core.device import BeltDirection, WalkDirection
from treadctl.core.state import InputHealth, Mode, Motion, Snapshot
from treadctl.mqtt.topics import Topics

OK_BOX = InputHealth("box", "heartbeat", "ok", "3 good heartbeats in a row")
PRESSED = InputHealth("mushroom", "modem-lines", "pressed", "loop open")


def topics_for(device_id: str = "clinic-1") -> Topics:
    base = f"treadctl/{device_id}"
    return Topics(
        base=base,
        device_id=device_id,
        discovery_prefix="homeassistant",
        heart_rate=f"{base}/input/heart_rate",
    )


def running_snapshot() -> Snapshot:
    """A program running backward, every field filled."""
    motion = Motion(1.2, WalkDirection.BACKWARD, BeltDirection.REVERSE, 2.0)
    return Snapshot(
        ts=1_700_000_000.0,
        mode=Mode.RUNNING,
        program="backward-intervals",
        phase="backward bout",
        phase_index=3,
        phase_remaining_s=42.0,
        session_id="s1",
        target=motion,
        actual=motion,
        fault=None,
        distance_m=12.5,
        elapsed_s=60.0,
        heart_rate_bpm=96,
    )


def idle_snapshot() -> Snapshot:
    """Idle after power-up: every optional field is null."""
    motion = Motion(0.0, WalkDirection.FORWARD, BeltDirection.FORWARD, 0.0)
    return dataclasses.replace(
        running_snapshot(),
        mode=Mode.IDLE,
        program=None,
        phase=None,
        phase_index=None,
        phase_remaining_s=None,
        session_id=None,
        target=motion,
        actual=motion,
        distance_m=0.0,
        elapsed_s=0.0,
        heart_rate_bpm=None,
    )
