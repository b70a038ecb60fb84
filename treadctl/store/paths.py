"""Where the session database lives when the configuration does not say."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from treadctl.config import Settings

FILENAME = "sessions.db"


def database_path(settings: Settings, environ: Mapping[str, str] | None = None) -> Path:
    """storage.path, else $STATE_DIRECTORY/sessions.db (systemd's StateDirectory=), else
    $XDG_STATE_HOME/treadctl/sessions.db, whose default is ~/.local/state/treadctl/sessions.db."""
    env = os.environ if environ is None else environ
    if settings.storage.path is not None:
        return settings.storage.path.expanduser()
    # systemd joins several StateDirectory= entries with ':'; the first is this unit's own.
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / FILENAME
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "treadctl" / FILENAME
