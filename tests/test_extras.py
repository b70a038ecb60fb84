"""The daemon installs without the optional extras (docs/install.md): it imports none of their
packages, and the commands that need one say which extra to install instead of a traceback.

Each case runs `treadctl` in a subprocess where the extras' packages cannot be imported (None in
sys.modules), as after `pip install treadctl` without extras.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXTRAS_PACKAGES = (
    "amqtt",
    "matplotlib",
    "numpy",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "starlette",
    "uvicorn",
    "fit_tool",
)
WITHOUT_EXTRAS = (
    "import sys\n"
    f"sys.modules.update(dict.fromkeys({EXTRAS_PACKAGES!r}))\n"
    "from treadctl.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def treadctl_without_extras(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_daemon_imports_no_optional_package() -> None:
    code = (
        "import sys\n"
        "import treadctl.cli, treadctl.daemon\n"
        "treadctl.cli.build_parser()\n"  # every subcommand's parser, as `treadctl --help`
        f"print(sorted(set({EXTRAS_PACKAGES!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_run_help_works_without_the_extras() -> None:
    result = treadctl_without_extras("run", "--help")
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout


def test_demo_names_the_demo_extra() -> None:
    result = treadctl_without_extras("demo", "--speedup", "100")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "from the 'demo' extra" in result.stderr  # whichever of its packages is first
    assert "pip install 'treadctl[demo]'" in result.stderr


def test_sessions_plot_names_the_charts_extra(tmp_path: Path) -> None:
    db, chart = tmp_path / "sessions.db", tmp_path / "chart.png"
    result = treadctl_without_extras(
        "sessions", "plot", "some-id", "--db", str(db), "--out", str(chart)
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "needs matplotlib" in result.stderr
    assert "pip install 'treadctl[charts]'" in result.stderr


def test_clinic_commands_name_the_clinic_extra(tmp_path: Path) -> None:
    for args in (("people", "list"), ("clinic", "--port", "0")):
        result = treadctl_without_extras(*args, "--database", f"sqlite:///{tmp_path}/c.db")
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert "pip install 'treadctl[clinic]'" in result.stderr, result.stderr
    assert not (tmp_path / "c.db").exists()  # nothing was created
