"""The watchdog's liveness rule (treadctl/daemon/systemd.py) without a loop or a socket."""

from __future__ import annotations

from treadctl.daemon.systemd import TICK_STALE_S, poll_alive


def test_the_poll_is_alive_only_with_a_recent_tick() -> None:
    assert not poll_alive(None, 100.0)  # no tick yet: nothing vouches for the serial poll
    assert poll_alive(100.0, 100.0)
    assert poll_alive(100.0, 100.0 + TICK_STALE_S - 0.01)
    assert not poll_alive(100.0, 100.0 + TICK_STALE_S)
