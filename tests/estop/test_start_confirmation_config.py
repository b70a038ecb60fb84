"""`safety.start_confirmation` and an e-stop box's `start_button`: the default, the rule each
setting gives the controller, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from treadctl.config import ConfigError, load_settings
from treadctl.config.models import Settings
from treadctl.control.start_gate import start_rule

BOX = '[[estop_inputs]]\nname = "box"\nkind = "heartbeat"\nport = "/dev/ttyACM0"\n'
GO_BOX = BOX + "start_button = true\n"


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return load_settings(path)


def test_the_default_is_auto_one_minute_and_off_without_a_go_button(tmp_path: Path) -> None:
    settings = load_settings(None)
    assert settings.safety.start_confirmation == "auto"
    assert settings.safety.start_confirmation_timeout_s == 60
    rule = start_rule(settings)
    assert not rule.required
    assert "auto" in rule.why
    box = load(tmp_path, BOX)  # a box without a start button
    assert box.estop_inputs[0].start_button is False
    assert not start_rule(box).required


def test_auto_with_a_go_button_requires_confirmation(tmp_path: Path) -> None:
    rule = start_rule(load(tmp_path, GO_BOX))
    assert rule.required
    assert (rule.buttons, rule.timeout_s) == (("box",), 60.0)


def test_off_turns_it_off_and_required_keeps_the_timeout(tmp_path: Path) -> None:
    off = load(tmp_path, '[safety]\nstart_confirmation = "off"\n' + GO_BOX)
    assert not start_rule(off).required
    assert "off" in start_rule(off).why
    required = load(
        tmp_path,
        '[safety]\nstart_confirmation = "required"\nstart_confirmation_timeout_s = 30\n' + GO_BOX,
    )
    assert start_rule(required).timeout_s == 30


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[safety]\nstart_confirmation = "required"\n', "start_confirmation = 'required'"),
        ('[safety]\nstart_confirmation = "required"\n' + BOX, "start_button = true"),
        ('[safety]\nstart_confirmation = "maybe"\n', "safety.start_confirmation"),
        ("[safety]\nstart_confirmation_timeout_s = 5\n", "safety.start_confirmation_timeout_s"),
        ("[safety]\nstart_confirmation_timeout_s = 601\n", "safety.start_confirmation_timeout_s"),
        (BOX + "start_button = 2\n", "estop_inputs.0.start_button"),
        (
            (
                '[[estop_inputs]]\nname = "m"\nkind = "modem-lines"\nport = "/dev/x"\n'
                "start_button = true\n"
            ),
            "start_button: not used by kind 'modem-lines'",
        ),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert key in str(err.value)


def test_required_without_a_button_after_a_reload_holds_starts_closed(tmp_path: Path) -> None:
    """A reload takes `[safety]` but not `[[estop_inputs]]` (they need a restart): required
    with the box still missing keeps every start waiting, never lets it through."""
    running = load(tmp_path, BOX)
    reloaded = running.model_copy(
        update={"safety": running.safety.model_copy(update={"start_confirmation": "required"})}
    )
    rule = start_rule(reloaded)
    assert rule.required
    assert rule.buttons == ()
    assert "until a restart" in rule.why
