"""`treadctl run`: the daemon. wiring.py builds and runs it; reload_policy.py decides what a
SIGHUP changes (pure); systemd.py is its side of systemd (notify, status, watchdog);
shutdown.py stops the belt and bounds the rest."""

from treadctl.daemon.wiring import Daemon, run_daemon

__all__ = ["Daemon", "run_daemon"]
