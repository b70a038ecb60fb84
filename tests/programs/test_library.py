"""The built-in library, user directories, the shipped JSON Schema, and `treadctl programs`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from cli_process import run_treadctl

from treadctl.config import load_settings
from treadctl.core.device import WalkDirection
from treadctl.core.timeline import DeviceProfile, build_timeline
from treadctl.core.validation import check_program
from treadctl.devices import device_profile
from treadctl.drivers.trackmaster import TrackmasterDriver
from treadctl.programs.library import (
    ProgramFileError,
    ProgramLibrary,
    builtin_programs,
    json_schema,
)

SCHEMA_FILE = Path(__file__).parents[2] / "treadctl" / "programs" / "program.schema.json"
DEFAULT_DEVICE = device_profile(load_settings(None))
FORWARD_ONLY_FACE_AWAY = DeviceProfile(
    "trackmaster", TrackmasterDriver.capabilities, retro_mode="face-away"
)
BUILTINS = builtin_programs()

MY_PROGRAM = """
name = "my-intervals"
title = "My intervals"
[[phases]]
name = "warm-up"
duration = "1m"
walk = "forward"
speed_kmh = 2.0
[[phases]]
name = "backward block"
repeat = 2
[[phases.phases]]
name = "backward block"
duration = 30
walk = "backward"
speed_kmh = {speed}
"""


def test_at_least_five_builtins_each_with_a_citation_and_plan() -> None:
    assert {
        "chang2021-stroke",
        "alghadir2019-knee-oa",
        "backward-intervals",
        "backward-uphill",
        "elderly-balance",
    } <= set(BUILTINS)
    for entry in BUILTINS.values():
        program = entry.program
        assert program.source
        assert program.plan is not None
        assert any(p.walk is WalkDirection.BACKWARD for _, _, p in program.leaf_phases())


def test_key_doses_match_the_studies() -> None:
    chang = build_timeline(BUILTINS["chang2021-stroke"].program, DEFAULT_DEVICE)
    assert (
        sum(i.duration_us for i in chang.instances if i.walk is WalkDirection.BACKWARD)
        == 30 * 60 * 10**6
    )
    assert BUILTINS["chang2021-stroke"].program.plan is not None
    assert (
        BUILTINS["chang2021-stroke"].program.plan.sessions_per_week,
        BUILTINS["chang2021-stroke"].program.plan.weeks,
    ) == (3, 4)
    alghadir = build_timeline(BUILTINS["alghadir2019-knee-oa"].program, DEFAULT_DEVICE)
    assert sum(i.duration_us for i in alghadir.instances) == 10 * 60 * 10**6
    uphill = build_timeline(BUILTINS["backward-uphill"].program, DEFAULT_DEVICE)
    assert sorted(
        {i.incline_pct for i in uphill.instances if i.walk is WalkDirection.BACKWARD}
    ) == [0, 5, 7.5, 10]


@pytest.mark.parametrize("name", sorted(BUILTINS))
@pytest.mark.parametrize(
    "device", [DEFAULT_DEVICE, FORWARD_ONLY_FACE_AWAY], ids=["default", "face-away"]
)
def test_every_builtin_validates(name: str, device: DeviceProfile) -> None:
    program = BUILTINS[name].program
    assert check_program(program, device) == []
    # Across its whole parameter range, on a treadmill that can go as slow as the slowest one.
    slow = dataclasses.replace(
        device, capabilities=dataclasses.replace(device.capabilities, speed_min_kmh=0.1)
    )
    for pname, param in program.parameters.items():
        assert check_program(program, slow, {pname: param.max}) == []
        assert check_program(program, slow, {pname: param.min}) == []


def test_a_phase_slower_than_the_treadmill_can_go_is_refused() -> None:
    program = BUILTINS["chang2021-stroke"].program
    assert DEFAULT_DEVICE.capabilities.speed_min_kmh > 0.3  # 0.2 mph on the Woodway protocol
    problems = check_program(program, DEFAULT_DEVICE, {"comfortable_backward_kmh": 0.3})
    assert len(problems) == 1
    assert "below the sim treadmill's slowest speed of 0.32 km/h" in problems[0]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == json_schema(), (
        "regenerate: treadctl programs schema > " + str(SCHEMA_FILE)
    )
    schema = json.loads(SCHEMA_FILE.read_text())
    assert "Phase" in schema["$defs"]


def test_user_directory_programs_and_errors(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(MY_PROGRAM.format(speed=1.5))
    (tmp_path / "broken.toml").write_text("name = 'x'\n")
    clash = MY_PROGRAM.format(speed=1).replace("my-intervals", "chang2021-stroke")
    (tmp_path / "clash.toml").write_text(clash)
    library = ProgramLibrary(tmp_path)
    assert "my-intervals" in library.names()
    assert library.entries["chang2021-stroke"].origin == "built-in"
    assert any("broken.toml" in e and "title" in e for e in library.errors)
    assert any("clash.toml" in e and "built-in" in e for e in library.errors)
    with pytest.raises(ProgramFileError, match="unknown program 'nope'"):
        library.get("nope")


def test_cli_list() -> None:
    result = run_treadctl("programs", "list")
    assert result.returncode == 0, result.stderr
    for name in BUILTINS:
        assert name in result.stdout


def test_cli_show_prints_the_expanded_timeline() -> None:
    result = run_treadctl("programs", "show", "backward-intervals")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "standstill" in out
    assert "countdown" in out
    assert "reverse" in out
    assert 'phase 2 "backward bout" (repeat 5)' in out
    assert "total 21m 39s" in out


def test_cli_show_for_a_face_away_device(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[device]\ndriver = "trackmaster"\nport = "/dev/null"\nretro_mode = "face-away"\n'
    )
    result = run_treadctl("programs", "show", "elderly-balance", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "turn around" in result.stdout
    assert " reverse " not in result.stdout  # the belt never reverses


def test_cli_validate_ok_and_failing(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MY_PROGRAM.format(speed=1.5))
    ok = run_treadctl("programs", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "valid for this device" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(MY_PROGRAM.format(speed=4.0))
    failed = run_treadctl("programs", "validate", str(bad))
    assert failed.returncode == 2
    expected = (
        f'treadctl: {bad}: phase 2 "backward block" (repeat 1): '
        "4.0 km/h exceeds limits.max_speed_backward_kmh = 3.0"
    )
    assert failed.stderr.strip().splitlines() == [expected]


def test_cli_validate_with_session_parameters() -> None:
    ok = run_treadctl(
        "programs", "validate", "chang2021-stroke", "--param", "comfortable_backward_kmh=1.5"
    )
    assert ok.returncode == 0, ok.stderr
    bad = run_treadctl(
        "programs", "validate", "chang2021-stroke", "--param", "comfortable_backward_kmh=fast"
    )
    assert bad.returncode == 2
    assert "use NAME=NUMBER" in bad.stderr


def test_cli_validate_format_errors_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        'name = "x"\ntitle = "X"\n[[phases]]\nname = "p"\n'
        'duration = "soon"\nwalk = "forward"\nspeed_kmh = 1\n'
    )
    result = run_treadctl("programs", "validate", str(broken))
    assert result.returncode == 2
    assert f"{broken}: phases[1].duration: not a duration: 'soon'" in result.stderr
    missing = run_treadctl("programs", "validate", str(tmp_path / "missing.toml"))
    assert missing.returncode == 2
    assert "no such program file" in missing.stderr


def test_cli_schema_is_json() -> None:
    result = run_treadctl("programs", "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "Program"
