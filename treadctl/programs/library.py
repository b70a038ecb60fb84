"""Load programs from TOML files: the built-ins shipped in the package and a user directory."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from treadctl.core.program import Program

BUILTIN_PACKAGE = "treadctl.programs.builtin"


class ProgramFileError(Exception):
    """A program file that cannot be read or does not follow the format; names file and key."""


@dataclass(frozen=True, slots=True)
class Entry:
    program: Program
    origin: str  # "built-in" or the file path


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"  # people count phases from 1
        elif part in ("phase", "block"):
            continue  # the discriminator's tag, not a key in the file
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_program(text: str, origin: str) -> Program:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramFileError(f"{origin}: not valid TOML: {exc}") from exc
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"{origin}: {_loc(err['loc'])}: {message}")
        raise ProgramFileError("\n".join(lines)) from exc


def load_program_file(path: Path) -> Program:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramFileError(f"{path}: no such program file") from None
    except OSError as exc:
        raise ProgramFileError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_program(text, str(path))


def builtin_programs() -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for item in sorted(resources.files(BUILTIN_PACKAGE).iterdir(), key=lambda i: i.name):
        if item.name.endswith(".toml"):
            program = parse_program(item.read_text(encoding="utf-8"), f"built-in {item.name}")
            out[program.name] = Entry(program, "built-in")
    return out


class ProgramLibrary:
    """Built-in programs plus the `*.toml` files of an optional user directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.entries = builtin_programs()
        self.errors: list[str] = []  # broken user files, reported but not fatal to the rest
        if directory is not None:
            self._load_directory(directory)

    def _load_directory(self, directory: Path) -> None:
        if not directory.is_dir():
            self.errors.append(f"{directory}: programs directory not found")
            return
        for path in sorted(directory.glob("*.toml")):
            try:
                program = load_program_file(path)
            except ProgramFileError as exc:
                self.errors.append(str(exc))
                continue
            if program.name in self.entries and self.entries[program.name].origin == "built-in":
                self.errors.append(
                    f"{path}: name {program.name!r} is a built-in program; rename it "
                    "(built-ins cannot be replaced, so a cited protocol always means the same)"
                )
                continue
            self.entries[program.name] = Entry(program, str(path))

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name_or_path: str) -> Entry:
        """A program by name, or from a file when the argument is a path to a .toml file."""
        if name_or_path in self.entries:
            return self.entries[name_or_path]
        path = Path(name_or_path)
        if name_or_path.endswith(".toml") or path.exists():
            return Entry(load_program_file(path), str(path))
        raise ProgramFileError(
            f"unknown program {name_or_path!r} (known: {', '.join(self.names())})"
        )


def json_schema() -> str:
    schema = Program.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://treadctl.invalid/program.schema.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
