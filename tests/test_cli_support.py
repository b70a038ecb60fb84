"""The command line's one scaffold: where the configuration is, --param, errors to exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from treadctl.cli_support import (
    CommandError,
    ExitCode,
    UsageError,
    config_path,
    dispatch,
    load_config,
    parse_params,
)


def test_config_path_is_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TREADCTL_CONFIG", raising=False)
    assert config_path(None) is None  # the embedded defaults
    monkeypatch.setenv("TREADCTL_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(None) == tmp_path / "env.toml"
    assert config_path(tmp_path / "given.toml") == tmp_path / "given.toml"


def test_a_bad_configuration_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\npath = 5\n")
    with pytest.raises(UsageError, match=r"storage\.path"):
        load_config(bad)


def test_params() -> None:
    assert parse_params([]) == {}
    assert parse_params([" speed = 1.5", "grade=2"]) == {"speed": 1.5, "grade": 2.0}
    for bad in ("speed", "=1", "speed=fast", "speed=nan", "speed=inf"):
        with pytest.raises(UsageError, match="use NAME=NUMBER"):
            parse_params([bad])


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("no such file"), ExitCode.USAGE),
        (CommandError("no answer"), ExitCode.FAILURE),
        (KeyboardInterrupt(), ExitCode.FAILURE),
    ],
)
def test_dispatch_turns_errors_into_exit_codes(
    error: BaseException, code: ExitCode, capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(_: argparse.Namespace) -> int:
        raise error

    assert dispatch(argparse.Namespace(func=handler)) == code
    assert capsys.readouterr().err == (f"treadctl: {error}\n" if str(error) else "")


def test_dispatch_returns_the_handlers_code() -> None:
    assert dispatch(argparse.Namespace(func=lambda _: 3)) == 3
