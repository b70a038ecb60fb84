"""`treadctl run` builds only its own parser: the other subcommands' modules stay unimported on
the daemon's way to READY (docs/performance.md, "Start to ready"), and the command line answers
as before. Real processes: `python -m treadctl`."""

from __future__ import annotations

import subprocess
import sys

OTHER_COMMANDS = (
    "treadctl.client.commands",
    "treadctl.clinic.cli",
    "treadctl.clinic.serve",
    "treadctl.programs.commands",
    "treadctl.store.cli",
)


def treadctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "treadctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_parses_without_importing_the_other_commands() -> None:
    code = (
        "import sys\n"
        "from treadctl.cli import build_parser, cmd_run\n"
        "argv = ['run', '--config', 'x.toml']\n"
        "args = build_parser(argv).parse_args(argv)\n"
        "assert args.func is cmd_run and str(args.config_path) == 'x.toml', args\n"
        f"print(sorted(set({OTHER_COMMANDS!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


def test_every_other_command_line_still_has_the_whole_tree() -> None:
    result = treadctl("--help")
    assert result.returncode == 0, result.stderr
    for command in ("run", "sim", "programs", "status", "sessions", "clinic", "demo"):
        assert command in result.stdout, (command, result.stdout)


def test_run_help_and_a_bad_option_answer_as_before() -> None:
    result = treadctl("run", "--help")
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout
    result = treadctl("run", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
