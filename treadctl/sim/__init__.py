"""Simulators for the demo, tests and benches: a treadmill (belt physics plus wire personalities)
and an e-stop button box, each served on a pseudo-terminal; an MQTT broker (embedded_broker.py),
a launcher of broker processes (brokers.py) and systemd's notify socket (notify_socket.py). The
daemon imports the treadmill only for `device.driver = "sim"` (devices.py)."""

# Wire personalities `treadctl sim --driver` offers; here so the CLI can list them without
# importing the simulator (and pymodbus) at start-up.
PERSONALITIES = ("trackmaster", "woodway", "csafe", "delta-vfd")
