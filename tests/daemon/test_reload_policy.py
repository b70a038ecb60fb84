"""The reload policy (treadctl/daemon/reload_policy.py) without I/O: what a SIGHUP applies at
once, what waits for an idle belt, what needs a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from treadctl.config.models import EStopInputConfig, Settings
from treadctl.core.state import Mode
from treadctl.daemon.reload_policy import RESTART_SECTIONS, limits_apply_now, plan_reload

RUNNING = Settings(device={"id": "t1", "driver": "sim"})


def test_programs_telemetry_and_log_level_apply_at_once() -> None:
    new = RUNNING.model_copy(
        update={
            "telemetry": RUNNING.telemetry.model_copy(update={"rate_hz": 2}),
            "programs": RUNNING.programs.model_copy(update={"directory": Path("/elsewhere")}),
            "log_level": "DEBUG",
        }
    )
    plan = plan_reload(RUNNING, new)
    assert plan.now.telemetry.rate_hz == 2
    assert plan.now.programs.directory == Path("/elsewhere")
    assert plan.now.log_level == "DEBUG"
    assert plan.needs_restart == ()


def test_limits_and_safety_wait_for_the_idle_settings() -> None:
    limits = RUNNING.limits.model_copy(update={"max_speed_forward_kmh": 3.0})
    safety = RUNNING.safety.model_copy(update={"broker_loss_s": 7.0})
    new = RUNNING.model_copy(
        update={
            "limits": limits,
            "safety": safety,
            "telemetry": RUNNING.telemetry.model_copy(update={"rate_hz": 4}),
        }
    )
    plan = plan_reload(RUNNING, new)
    assert (plan.now.limits, plan.now.safety) == (RUNNING.limits, RUNNING.safety)
    assert (plan.when_idle.limits, plan.when_idle.safety) == (limits, safety)
    assert plan.when_idle.telemetry.rate_hz == 4  # what applied at once stays applied


@pytest.mark.parametrize("section", RESTART_SECTIONS)
def test_connections_and_files_need_a_restart(section: str) -> None:
    changes: dict[str, dict[str, Any]] = {
        "device": {"device": RUNNING.device.model_copy(update={"id": "t2"})},
        "mqtt": {"mqtt": RUNNING.mqtt.model_copy(update={"host": "elsewhere"})},
        "storage": {"storage": RUNNING.storage.model_copy(update={"path": Path("/x.db")})},
        "estop_inputs": {
            "estop_inputs": (EStopInputConfig(name="box", kind="modem-lines", port="loop://"),)
        },
    }
    new = RUNNING.model_copy(update=changes[section])
    plan = plan_reload(RUNNING, new)
    assert plan.needs_restart == (section,)
    # Kept as it runs, now and when idle.
    assert getattr(plan.now, section) == getattr(RUNNING, section)
    assert getattr(plan.when_idle, section) == getattr(RUNNING, section)


def test_new_limits_wait_unless_the_belt_is_idle() -> None:
    assert limits_apply_now(Mode.IDLE)
    assert limits_apply_now(None)  # no controller yet
    for mode in (Mode.RUNNING, Mode.PAUSED, Mode.STOPPING, Mode.ESTOP, Mode.FAULT):
        assert not limits_apply_now(mode)
