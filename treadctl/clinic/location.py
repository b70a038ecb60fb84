"""Where the clinic database lives when the configuration does not say (no database packages
imported here: `treadctl start --person` asks before deciding whether to open one)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FILENAME = "clinic.db"


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """$STATE_DIRECTORY/clinic.db (systemd's StateDirectory=), else
    $XDG_STATE_HOME/treadctl/clinic.db, whose default is ~/.local/state/treadctl/clinic.db."""
    env = os.environ if environ is None else environ
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / FILENAME
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "treadctl" / FILENAME


def default_url(environ: Mapping[str, str] | None = None) -> str:
    return f"sqlite:///{default_path(environ)}"
