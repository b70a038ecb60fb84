"""Configuration: TOML + environment, errors that name the file and key, redaction, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from cli_process import run_treadctl

from treadctl.config import ConfigError, load_settings
from treadctl.config.loader import REDACTED, redacted
from treadctl.config.models import MAX_POLL_INTERVAL_S, DeviceConfig, DriverName, VfdConfig
from treadctl.devices import capabilities_of

EXAMPLE = Path(__file__).parent.parent / "config" / "treadctl.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "treadctl.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    s = load_settings(None)
    assert s.device.driver == "sim"
    assert s.limits.max_speed_backward_kmh == 3.0
    assert s.limits.max_speed_forward_kmh == 6.0
    assert s.mqtt.prefix == "treadctl"
    assert s.telemetry.rate_hz == 5.0


def test_the_shipped_example_is_valid() -> None:
    s = load_settings(EXAMPLE)
    assert s.device.driver == "woodway"
    assert s.device.port is not None


def test_file_values_and_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '[device]\ndriver = "trackmaster"\nport = "/dev/ttyUSB0"\n[mqtt]\nhost = "a"\n'
    )
    monkeypatch.setenv("TREADCTL_MQTT__HOST", "broker.lan")
    monkeypatch.setenv("TREADCTL_LIMITS__MAX_SPEED_BACKWARD_KMH", "2.5")
    monkeypatch.setenv("TREADCTL_LOG_LEVEL", "debug")
    s = load_settings(path)
    assert s.device.driver == "trackmaster"
    assert s.device.effective_baudrate == 4800
    assert s.mqtt.host == "broker.lan"  # the environment wins over the file
    assert s.limits.max_speed_backward_kmh == 2.5
    assert s.log_level == "DEBUG"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[device]\ndriver = \n")
    with pytest.raises(ConfigError, match=r"treadctl\.toml: not valid TOML: .*line 2"):
        load_settings(path)


def test_unknown_key_names_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmax_speed_backwards_kmh = 2.0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: limits.max_speed_backwards_kmh: unknown key" in str(info.value)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[limits]\nmax_speed_backward_kmh = 7.0", "limits.max_speed_backward_kmh"),  # over 6.5
        ("[limits]\nmax_speed_forward_kmh = 20", "limits.max_speed_forward_kmh"),  # over 16
        ("[limits]\nmax_accel_mps2 = 0.5", "limits.max_accel_mps2"),
        ("[limits]\nstart_speed_kmh = 1.0", "limits.start_speed_kmh"),
        ("[safety]\nreversal_standstill_s = 1.0", "safety.reversal_standstill_s"),
        ("[safety]\nestop_interlock_s = 0", "safety.estop_interlock_s"),
        ('[device]\nretro_mode = "sideways"', "device.retro_mode"),
        ('[device]\ndriver = "woodway"', "device"),  # a real driver needs a port
        ("[device]\npoll_interval_s = 0.5", "device.poll_interval_s"),  # the watchdog needs ≤ 0.25
        ("[device]\npoll_interval_s = 0.7", "device.poll_interval_s"),  # no driver takes that
        ("[mqtt]\nport = 70000", "mqtt.port"),
        ('[mqtt]\nprefix = "a/#"', "mqtt.prefix"),
        ("[telemetry]\nrate_hz = 0", "telemetry.rate_hz"),
        ('log_level = "LOUD"', "log_level"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path, toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: {key}" in str(info.value)


def test_the_poll_interval_defaults_to_the_controllers_tenth_of_a_second() -> None:
    assert load_settings(None).device.poll_interval_s == 0.1
    assert load_settings(EXAMPLE).device.poll_interval_s == 0.1  # the example shows the default


@pytest.mark.parametrize(
    ("driver", "interval", "most"),
    [
        ("sim", 0.3, "0.25"),
        ("trackmaster", 0.3, "0.25"),  # its 0.5 s watchdog would starve between polls
        ("woodway", 0.26, "0.25"),
        ("delta-vfd", 0.3, "0.25"),
        ("csafe", 0.6, "0.5"),
    ],
)
def test_a_poll_interval_the_driver_cannot_take_is_refused_naming_the_key(
    tmp_path: Path, driver: str, interval: float, most: str
) -> None:
    path = write(
        tmp_path,
        f'[device]\ndriver = "{driver}"\nport = "/dev/ttyUSB0"\npoll_interval_s = {interval}\n'
        "[device.vfd]\nkmh_per_hz = 0.2\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"{path}: device.poll_interval_s: {interval} s is too long for driver" in message
    assert f"at most {most} s" in message


def test_each_driver_takes_the_longest_interval_it_allows(tmp_path: Path) -> None:
    for driver in get_args(DriverName):
        most, _ = MAX_POLL_INTERVAL_S[driver]
        device = DeviceConfig(
            driver=driver, port="/dev/ttyUSB0", poll_interval_s=most, vfd=VfdConfig(kmh_per_hz=0.2)
        )
        # the table the configuration checks is the drivers' own word
        assert capabilities_of(device).max_poll_interval_s == most
    assert DeviceConfig(driver="csafe", port="/dev/x", poll_interval_s=0.4).poll_interval_s == 0.4


def test_a_poll_interval_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TREADCTL_DEVICE__POLL_INTERVAL_S", "0.4")  # the sim driver: ≤ 0.25
    with pytest.raises(ConfigError, match="environment TREADCTL_DEVICE__POLL_INTERVAL_S: device"):
        load_settings(None)
    monkeypatch.setenv("TREADCTL_DEVICE__POLL_INTERVAL_S", "0.01")  # spinning on the line
    with pytest.raises(ConfigError, match=r"device\.poll_interval_s: Input should be greater"):
        load_settings(None)


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADCTL_LIMITS__MAX_SPEED_BACKWARD_KMH", "fast")
    with pytest.raises(ConfigError, match="environment TREADCTL_LIMITS__MAX_SPEED_BACKWARD_KMH"):
        load_settings(None)


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TREADCTL_MQTT__PASSWORD", "hunter2")
    s = load_settings(None)
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == "hunter2"
    assert redacted(s)["mqtt"]["password"] == REDACTED
    assert "hunter2" not in repr(s)


def test_cli_config_check_prints_effective_config_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "broker.lan"\npassword = "hunter2"\n')
    result = run_treadctl("config", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert 'host = "broker.lan"' in result.stdout
    assert "hunter2" not in result.stdout
    assert REDACTED in result.stdout


def test_cli_config_check_json() -> None:
    result = run_treadctl("config", "check", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert '"max_speed_backward_kmh": 3.0' in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[limits]\nbogus = 1\n", "limits.bogus: unknown key"),
        ("[limits]\nmax_speed_backward_kmh = 9\n", "limits.max_speed_backward_kmh"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_cli_bad_config_exits_2_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    result = run_treadctl("config", "check", "--config", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


def test_cli_missing_config_exits_2(tmp_path: Path) -> None:
    result = run_treadctl("config", "check", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert "missing.toml: configuration file not found" in result.stderr


def test_cli_usage_error_exits_2() -> None:
    assert run_treadctl("sim", "--driver", "nonexistent").returncode == 2
