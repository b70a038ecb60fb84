"""`[[estop_inputs]]` in the configuration: defaults, bounds, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadctl.config import ConfigError, load_settings


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return load_settings(path)


def test_inputs_load_with_their_defaults(tmp_path: Path) -> None:
    settings = load_settings(None)
    assert settings.estop_inputs == ()
    path = tmp_path / "t.toml"
    path.write_text(
        '[[estop_inputs]]\nname = "box"\nkind = "heartbeat"\nport = "/dev/ttyACM0"\n'
        '[[estop_inputs]]\nname = "mushroom"\nkind = "modem-lines"\nport = "/dev/ttyUSB1"\n'
        'input = "dsr"\noutput = "dtr"\n'
    )
    box, mushroom = load_settings(path).estop_inputs
    assert (box.timeout_s, box.healthy_after, box.baudrate) == (0.5, 3, 115200)
    assert (mushroom.output, mushroom.input, mushroom.poll_interval_s) == ("dtr", "dsr", 0.01)
    assert mushroom.timeout_s == 0.5  # no completed read of the line for this long: e-stop


def test_modem_lines_take_a_reading_deadline_within_bounds(tmp_path: Path) -> None:
    entry = '[[estop_inputs]]\nname = "m"\nkind = "modem-lines"\nport = "/dev/x"\ntimeout_s = {}\n'
    path = tmp_path / "t.toml"
    path.write_text(entry.format(1.0))
    assert load_settings(path).estop_inputs[0].timeout_s == 1.0
    for bad in (0.1, 3):
        with pytest.raises(ConfigError, match=r"estop_inputs\.0\.timeout_s"):
            load(tmp_path, entry.format(bad))


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('name = "box"\nkind = "button"\nport = "/dev/x"', "estop_inputs.0.kind"),
        ('name = "Box!"\nkind = "heartbeat"\nport = "/dev/x"', "estop_inputs.0.name"),
        ('name = "box"\nkind = "heartbeat"', "estop_inputs.0.port"),
        ('name = "box"\nkind = "heartbeat"\nport = "/dev/x"\ntimeout_s = 0.1', "timeout_s"),
        ('name = "box"\nkind = "heartbeat"\nport = "/dev/x"\ninput = "cts"', "input"),
        (
            'name = "box"\nkind = "modem-lines"\nport = "/dev/x"\ninput = "ri"',
            "estop_inputs.0.input",
        ),
        ('name = "box"\nkind = "heartbeat"\nport = "/dev/x"\ncolour = "red"', "colour"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"[[estop_inputs]]\n{body}\n")
    assert key in str(err.value)


def test_names_and_ports_must_be_apart(tmp_path: Path) -> None:
    entry = '[[estop_inputs]]\nname = "{}"\nkind = "heartbeat"\nport = "{}"\n'
    with pytest.raises(ConfigError, match=r"estop_inputs\.1\.name: 'a' is used twice"):
        load(tmp_path, entry.format("a", "/dev/x") + entry.format("a", "/dev/y"))
    device = '[device]\ndriver = "woodway"\nport = "/dev/x"\n'
    with pytest.raises(ConfigError, match=r"estop_inputs\.0\.port: '/dev/x' is already used"):
        load(tmp_path, device + entry.format("a", "/dev/x"))
