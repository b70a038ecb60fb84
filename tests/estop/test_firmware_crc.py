"""The button box's firmware and the daemon compute the same CRC-8 and the same lines.

The firmware is MicroPython (`machine`, a watchdog, an endless loop), so it cannot be imported
in CPython. Its `crc8` and `send` functions are taken out of the source with `ast` and run
alone: the test reads the code that goes on the Pico, not a copy of it.
"""

from __future__ import annotations

import ast
import io
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from treadctl.estop.protocol import crc8, encode, heartbeat_line, parse, stop_line

FIRMWARE = Path(__file__).parents[2] / "firmware" / "estop_box" / "main.py"


def firmware_functions(*names: str, **namespace: Any) -> dict[str, Callable[..., Any]]:
    """The named top-level functions of the firmware, compiled alone in `namespace`."""
    tree = ast.parse(FIRMWARE.read_text(encoding="utf-8"), filename=str(FIRMWARE))
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert sorted(f.name for f in found) == sorted(names), "the firmware lost a function"
    module = ast.Module(body=list(found), type_ignores=[])
    exec(compile(module, str(FIRMWARE), "exec"), namespace)  # our own firmware, nothing else
    return {name: namespace[name] for name in names}


def firmware_send(body: str) -> bytes:
    """What the firmware's `send(body)` writes on its USB serial."""
    out = io.StringIO()
    fns = firmware_functions("crc8", "send", sys=SimpleNamespace(stdout=out))
    fns["send"](body)
    return out.getvalue().encode()


FIRMWARE_CRC8 = firmware_functions("crc8")["crc8"]


def test_the_catalogue_check_value() -> None:
    assert FIRMWARE_CRC8(b"123456789") == crc8(b"123456789") == 0xF4


@given(st.binary(max_size=64))
def test_the_firmware_crc_is_the_daemons(data: bytes) -> None:
    assert FIRMWARE_CRC8(data) == crc8(data)


@given(st.integers(0, 0xFFFF), st.booleans())
def test_the_firmware_lines_are_the_ones_the_daemon_parses(seq: int, pressed: bool) -> None:
    # The bodies exactly as the firmware's loop formats them.
    beat = firmware_send("HB %d %s" % (seq, "P" if pressed else "R"))  # noqa: UP031 - as on the Pico
    stop = firmware_send("STOP %d" % seq)  # noqa: UP031
    assert beat == heartbeat_line(seq, pressed)
    assert stop == stop_line(seq)
    parse(beat.rstrip(b"\n"))
    parse(stop.rstrip(b"\n"))


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_send_frames_any_ascii_body_as_encode_does(body: str) -> None:
    assert firmware_send(body) == encode(body)
