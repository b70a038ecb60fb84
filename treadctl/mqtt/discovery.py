"""Home Assistant device-based MQTT discovery: one retained config message per treadmill.

Entities read the retained `state` and the `telemetry` stream with value templates, and
command through the same `cmd/…` topics as every other client, so Home Assistant gets no
privileges others do not have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from treadctl.mqtt.topics import Topics

RUNNING_MODES = ("running", "paused", "stopping")
FAULT_MODES = ("estop", "fault")
# On every command entity, not only at the root: older Home Assistant versions do not pass the
# root's `qos` down to the components and would publish commands, the e-stop too, at QoS 0.
COMMAND_QOS = 1
_INPUT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # config's EStopInputConfig.name


def _sensor(uid: str, name: str, topic: str, template: str, **extra: Any) -> dict[str, Any]:
    return {
        "p": "sensor",
        "name": name,
        "uniq_id": uid,
        "stat_t": topic,
        "val_tpl": template,
        **extra,
    }


def _estop_input_sensor(uid: str, name: str, state_topic: str) -> dict[str, Any]:
    """A safety binary sensor (ON means unsafe) for one dedicated e-stop input.

    The template reads with `.get` so that a state without the input (`estop_inputs` is `{}`
    until the input first reports) renders ON instead of raising UndefinedError, which Home
    Assistant logs while it keeps showing the previous, possibly safe, value.
    """
    if not _INPUT_NAME.match(name):  # it is quoted into the template below
        raise ValueError(f"e-stop input name {name!r} is not a-z, 0-9 and _")
    healthy = f"value_json.get('estop_inputs', {{}}).get('{name}', {{}}).get('healthy')"
    return {
        "p": "binary_sensor",
        "name": f"E-stop input {name}",
        "uniq_id": f"{uid}_estop_input_{name}",
        "dev_cla": "safety",
        "stat_t": state_topic,
        "val_tpl": "{{ 'OFF' if " + healthy + " is true else 'ON' }}",
    }


def discovery_config(
    topics: Topics,
    *,
    programs: Sequence[str],
    max_speed_kmh: float,
    model: str,
    version: str,
    estop_inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The payload for `homeassistant/device/treadctl_{id}/config`."""
    uid = f"treadctl_{topics.device_id}"
    tel, state = topics.telemetry, topics.state
    press = "{}"
    running = " or ".join(f"value_json.mode == '{m}'" for m in RUNNING_MODES)
    faulty = " or ".join(f"value_json.mode == '{m}'" for m in FAULT_MODES)
    components: dict[str, dict[str, Any]] = {
        "speed": _sensor(
            f"{uid}_speed",
            "Speed",
            tel,
            "{{ value_json.speed_kmh }}",
            dev_cla="speed",
            unit_of_meas="km/h",
            stat_cla="measurement",
        ),
        "incline": _sensor(
            f"{uid}_incline",
            "Incline",
            tel,
            "{{ value_json.incline_pct }}",
            unit_of_meas="%",
            stat_cla="measurement",
            ic="mdi:slope-uphill",
        ),
        "distance": _sensor(
            f"{uid}_distance",
            "Distance",
            tel,
            "{{ value_json.distance_m }}",
            dev_cla="distance",
            unit_of_meas="m",
            stat_cla="total_increasing",
        ),
        "elapsed": _sensor(
            f"{uid}_elapsed",
            "Elapsed",
            tel,
            "{{ value_json.elapsed_s }}",
            dev_cla="duration",
            unit_of_meas="s",
        ),
        "phase": _sensor(f"{uid}_phase", "Phase", state, "{{ value_json.phase }}", ic="mdi:walk"),
        "remaining": _sensor(
            f"{uid}_remaining",
            "Phase remaining",
            tel,
            "{{ value_json.phase_remaining_s }}",
            dev_cla="duration",
            unit_of_meas="s",
        ),
        "heart_rate": _sensor(
            f"{uid}_heart_rate",
            "Heart rate",
            tel,
            "{{ value_json.heart_rate_bpm }}",
            unit_of_meas="bpm",
            stat_cla="measurement",
            ic="mdi:heart-pulse",
        ),
        "mode": _sensor(
            f"{uid}_mode",
            "Mode",
            state,
            "{{ value_json.mode }}",
            dev_cla="enum",
            options=["idle", "running", "paused", "stopping", "estop", "fault"],
        ),
        "running": {
            "p": "binary_sensor",
            "name": "Running",
            "uniq_id": f"{uid}_running",
            "dev_cla": "running",
            "stat_t": state,
            "val_tpl": "{{ 'ON' if " + running + " else 'OFF' }}",
        },
        "fault": {
            "p": "binary_sensor",
            "name": "Fault",
            "uniq_id": f"{uid}_fault",
            "dev_cla": "problem",
            "stat_t": state,
            "val_tpl": "{{ 'ON' if " + faulty + " else 'OFF' }}",
        },
        "target_speed": {
            "p": "number",
            "name": "Target speed",
            "uniq_id": f"{uid}_target_speed",
            "cmd_t": topics.cmd("set"),
            "cmd_tpl": '{"speed_kmh": {{ value }}}',
            "stat_t": state,
            "val_tpl": "{{ value_json.target.speed_kmh }}",
            "min": 0,
            "max": max_speed_kmh,
            "step": 0.1,
            "unit_of_meas": "km/h",
            "dev_cla": "speed",
            "mode": "box",
            "qos": COMMAND_QOS,
        },
        "program": {
            "p": "select",
            "name": "Program",
            "uniq_id": f"{uid}_program",
            "cmd_t": topics.cmd("select"),
            "cmd_tpl": '{"program": "{{ value }}"}',
            "stat_t": state,
            "val_tpl": "{{ value_json.selected_program }}",
            "options": list(programs),
            "qos": COMMAND_QOS,
        },
    }
    for name, label, icon in (
        ("start", "Start", "mdi:play"),
        ("stop", "Stop", "mdi:stop"),
        ("pause", "Pause", "mdi:pause"),
        ("resume", "Resume", "mdi:play-pause"),
        ("estop", "Emergency stop", "mdi:alert-octagon"),
        ("reset", "Reset", "mdi:restore"),
    ):
        components[f"button_{name}"] = {
            "p": "button",
            "name": label,
            "uniq_id": f"{uid}_{name}",
            "cmd_t": topics.cmd(name),
            "pl_prs": press,
            "ic": icon,
            "qos": COMMAND_QOS,
        }
    for name in estop_inputs:
        components[f"estop_input_{name}"] = _estop_input_sensor(uid, name, state)
    return {
        "dev": {
            "ids": [uid],
            "name": f"Treadmill {topics.device_id}",
            "mf": "treadctl",
            "mdl": model,
            "sw": version,
        },
        "o": {"name": "treadctl", "sw": version},
        "avty_t": topics.availability,
        "qos": 1,
        "cmps": components,
    }


def discovery_payload(topics: Topics, **kwargs: Any) -> bytes:
    return json.dumps(discovery_config(topics, **kwargs), separators=(",", ":")).encode()
