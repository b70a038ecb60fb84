"""`[device.csafe]` and `[device.vfd]`: validation names the key, and devices.py builds drivers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from treadctl.config import ConfigError, load_settings
from treadctl.config.models import DeviceConfig, VfdConfig
from treadctl.devices import build_driver, capabilities_of, device_profile
from treadctl.drivers.csafe import CsafeDriver
from treadctl.drivers.delta_vfd import DeltaVfdDriver


def load(tmp_path: Path, text: str) -> DeviceConfig:
    path = tmp_path / "treadctl.toml"
    path.write_text(text)
    return load_settings(path).device


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('driver = "delta-vfd"\nport = "/dev/ttyUSB0"', "device.vfd.kmh_per_hz is required"),
        (
            'driver = "delta-vfd"\nport = "/dev/ttyUSB0"\n[device.vfd]\nroller_diameter_mm = 50',
            "device.vfd.gear_ratio, device.vfd.motor_poles missing",
        ),
        (
            'driver = "delta-vfd"\nport = "x"\n[device.vfd]\nkmh_per_hz = 0.2\ngear_ratio = 2',
            "not both",
        ),
        (
            'driver = "delta-vfd"\nport = "x"\n[device.vfd]\nkmh_per_hz = 0.2\nparity = "M"',
            "parity",
        ),
        (
            'driver = "delta-vfd"\nport = "x"\n[device.vfd]\nkmh_per_hz = 0.2\nunit_id = 0',
            "unit_id",
        ),
        ('driver = "csafe"\nport = "x"\n[device.csafe]\nunits = "knots"', "device.csafe.units"),
        ('driver = "csafe"', "device.port is required"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, "[device]\n" + text + "\n")


def test_vfd_keys_build_the_driver(tmp_path: Path) -> None:
    device = load(
        tmp_path,
        '[device]\ndriver = "delta-vfd"\nport = "/dev/ttyUSB0"\n'
        '[device.vfd]\nunit_id = 3\nparity = "E"\nroller_diameter_mm = 50\ngear_ratio = 1.5\n'
        "motor_poles = 4\nmax_hz = 50\naccept_no_comm_watchdog = true\n",
    )
    assert device.effective_baudrate == 9600
    # 4 poles: 30 motor rpm per Hz, / 1.5 = 20 roller rpm, × π × 0.05 m × 60 = 0.1885 km/h
    expected = 20 * math.pi * 0.05 * 60 / 1000
    assert device.vfd.effective_kmh_per_hz == pytest.approx(expected)
    driver = build_driver(device)
    assert isinstance(driver, DeltaVfdDriver)
    assert (driver.unit_id, driver.accept_no_comm_watchdog) == (3, True)
    assert driver.capabilities.speed_max_kmh == pytest.approx(50 * expected)
    assert driver.capabilities.reverse
    assert capabilities_of(device) == driver.capabilities


def test_csafe_keys_and_capabilities(tmp_path: Path) -> None:
    device = load(
        tmp_path,
        '[device]\ndriver = "csafe"\nport = "/dev/ttyUSB0"\nretro_mode = "face-away"\n'
        '[device.csafe]\nunits = "mph"\n',
    )
    driver = build_driver(device)
    assert isinstance(driver, CsafeDriver)
    caps = capabilities_of(device)
    assert not caps.reverse
    assert caps.watchdog_s is None
    assert caps.speed_resolution_kmh == pytest.approx(0.1609344)
    settings = load_settings(tmp_path / "treadctl.toml")
    assert device_profile(settings).retro_mode == "face-away"


def test_the_example_configuration_still_loads() -> None:
    example = Path(__file__).parents[2] / "config" / "treadctl.toml"
    assert load_settings(example).device.driver == "woodway"
    assert VfdConfig().kmh_per_hz is None
