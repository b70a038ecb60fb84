"""Treadmill drivers: a pure codec plus a session over one async serial link, per protocol."""
