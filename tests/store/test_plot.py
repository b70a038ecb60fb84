"""The chart: a valid PNG of the fixed size, for sessions with and without heart rate."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import zlib
from contextlib import closing
from pathlib import Path

import pytest

from store.synth import PhaseSpec, Synth, synthesise
from treadctl.store import SessionStore
from treadctl.store.plot import HEIGHT_PX, WIDTH_PX, _spans_from_samples, render, title
from treadctl.store.queries import get_session, load_samples, open_readonly

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (kind, length) == (b"IHDR", 13)  # the first chunk, as the format requires
    header = data[16:29]
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(b"IHDR" + header)
    width, height = struct.unpack(">II", header[:8])
    return width, height


@pytest.mark.parametrize("which", ["uphill", "manual"])
def test_png_of_the_fixed_size(
    history: tuple[Path, dict[str, Synth]], tmp_path: Path, which: str
) -> None:
    path, synths = history
    synth = synths[which]
    with closing(open_readonly(path)) as db:
        detail = get_session(db, synth.session_id)
        samples = load_samples(db, synth.session_id)
    out = tmp_path / f"{which}.png"
    render(detail, samples, out)
    data = out.read_bytes()
    assert png_size(data) == (WIDTH_PX, HEIGHT_PX) == (1200, 800)
    assert data.endswith(b"IEND\xaeB`\x82")
    buffer = io.BytesIO()  # a binary stream works too (stdout, HTTP)
    render(detail, samples, buffer)
    assert png_size(buffer.getvalue()) == (1200, 800)
    if keep := os.environ.get("TREADCTL_KEEP_PLOTS"):  # to look at them
        (Path(keep) / f"{which}.png").write_bytes(data)


def test_title_says_program_date_and_outcome(history: tuple[Path, dict[str, Synth]]) -> None:
    path, synths = history
    with closing(open_readonly(path)) as db:
        detail = get_session(db, synths["manual"].session_id)
        samples = load_samples(db, synths["manual"].session_id)
    text = title(detail.session, samples)
    assert text.startswith("manual · ")
    assert "2026" in text
    assert "stopped (command)" in text


async def test_a_session_without_phases_still_open(tmp_path: Path) -> None:
    """Manual sessions have no phases: walking direction comes from the samples."""
    path = tmp_path / "s.db"
    store = SessionStore(path)
    await store.start()
    synth = synthesise(
        "open-1",
        1_795_600_000.0,
        [PhaseSpec("f", "forward", 2.0, 120), PhaseSpec("b", "backward", 1.0, 120)],
    )
    store.session_started(
        "open-1", device_id="treadmill", driver="sim", program="manual", parameters={},
        plan=None, planned_s=None, started=synth.started,
    )  # fmt: skip
    for s in synth.samples:
        store.sample("open-1", s)
    await store.close()
    with closing(open_readonly(path)) as db:
        detail = get_session(db, "open-1")
        samples = load_samples(db, "open-1")
    assert detail.phases == []
    assert [p.walk for p in _spans_from_samples(samples)] == ["forward", "backward"]
    out = tmp_path / "open.png"
    await asyncio.to_thread(render, detail, samples, out)  # ~0.2 s of CPU: not in the loop
    assert png_size(out.read_bytes()) == (1200, 800)
    assert "still running" in title(detail.session, samples)
    if keep := os.environ.get("TREADCTL_KEEP_PLOTS"):
        (Path(keep) / "open.png").write_bytes(out.read_bytes())
