"""Imports point downwards only (docs/architecture.md): each module of treadctl may import modules
of its own layer or a lower one, and `core/` does no I/O. Read from the source with `ast`, so a
lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import treadctl

PACKAGE = Path(treadctl.__file__).parent

# Most specific prefix wins. Lower number = lower layer.
LAYERS: dict[str, int] = {
    "treadctl.core": 0,
    "treadctl.tasks": 0,
    "treadctl.extras": 0,
    "treadctl.logs": 0,
    "treadctl.__version__": 0,
    "treadctl.transport": 1,
    "treadctl.config": 1,
    "treadctl.drivers": 2,
    "treadctl.control": 3,
    "treadctl.mqtt": 4,
    "treadctl.store": 4,
    "treadctl.estop": 4,
    "treadctl.programs": 4,
    "treadctl.devices": 4,
    "treadctl.sim": 4,
    "treadctl.daemon": 5,
    # The clinic service: beside the daemon, over the broker; reads the store's session format.
    "treadctl.clinic": 5,
    "treadctl.sdnotify": 5,
    "treadctl.cli": 6,
    "treadctl.cli_support": 6,
    "treadctl.client": 6,
    "treadctl.demo": 6,
    "treadctl.__main__": 6,
    # Command-line front ends that live beside what they show.
    "treadctl.store.cli": 6,
    "treadctl.programs.commands": 6,
    "treadctl.clinic.cli": 6,
    "treadctl.clinic.serve": 6,
}
NAMES = {
    0: "core",
    1: "transport/config",
    2: "drivers",
    3: "control",
    4: "adapters",
    5: "daemon",
    6: "cli",
}
# Adapters talk to the controller through the Protocols they declare, never to control/ itself.
ADAPTERS_WITHOUT_CONTROL = ("treadctl.mqtt", "treadctl.store", "treadctl.estop")
IO_MODULES = {
    "asyncio",
    "socket",
    "serial",
    "threading",
    "subprocess",
    "sqlite3",
    "aiomqtt",
    "pymodbus",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int | None:
    if module == "treadctl":
        return 0  # the package's own __init__: the version only
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best] if best else None


def imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "treadctl":
                found += [(node.lineno, f"treadctl.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    assert SOURCES
    assert [module_name(p) for p in SOURCES if layer(module_name(p)) is None] == []


def violations(path: Path, here: str) -> list[str]:
    mine = layer(here)
    assert mine is not None
    found = []
    for line, target in imports(path):
        theirs = layer(target)
        if theirs is not None and theirs > mine:
            found.append(f"{here}:{line} ({NAMES[mine]}) imports {target} ({NAMES[theirs]})")
        if (
            here.startswith(ADAPTERS_WITHOUT_CONTROL)
            and mine == LAYERS["treadctl.mqtt"]
            and (target == "treadctl.control" or target.startswith("treadctl.control."))
        ):
            found.append(f"{here}:{line} imports {target}: adapters use a Protocol instead")
        if here.startswith("treadctl.core") and target.split(".")[0] in IO_MODULES:
            found.append(f"{here}:{line} imports {target}: core/ does no I/O")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_point_downwards(path: Path) -> None:
    assert violations(path, module_name(path)) == []


def test_the_check_sees_upward_and_io_imports(tmp_path: Path) -> None:
    """The rule can fail: core importing the daemon or asyncio, an adapter the controller."""
    source = PACKAGE / "core" / "units.py"
    copy = tmp_path / "units.py"
    copy.write_text(
        source.read_text(encoding="utf-8")
        + "\nfrom treadctl.daemon import wiring\nimport asyncio\n",
        encoding="utf-8",
    )
    assert violations(source, "treadctl.core.units") == []
    found = violations(copy, "treadctl.core.units")
    assert len(found) == 2
    assert "imports treadctl.daemon (daemon)" in found[0]
    assert "core/ does no I/O" in found[1]
    bridge = tmp_path / "bridge.py"
    bridge.write_text("from treadctl.control.controller import Controller\n", encoding="utf-8")
    (upward,) = violations(bridge, "treadctl.mqtt.bridge")
    assert upward.endswith("imports treadctl.control.controller: adapters use a Protocol instead")
