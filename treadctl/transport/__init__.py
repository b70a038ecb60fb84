"""The serial transport: the only serial I/O in treadctl, used by the drivers and the e-stop inputs.

It knows bytes and ports, not protocols: a lost port is its one error (`LinkLost`), which the
drivers' session translates into their own family.
"""
