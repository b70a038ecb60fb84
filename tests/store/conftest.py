"""A recorded history to read back (written by the real SessionStore)."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.synth import Synth, populate


@pytest.fixture
async def history(tmp_path: Path) -> tuple[Path, dict[str, Synth]]:
    path = tmp_path / "sessions.db"
    return path, await populate(path)
