"""A simulated treadmill: belt physics plus wire personalities, served on a pseudo-terminal."""

# Wire personalities `treadctl sim --driver` offers; here so the CLI can list them without
# importing the simulator (and pymodbus) at start-up.
PERSONALITIES = ("trackmaster", "woodway", "csafe", "delta-vfd")
