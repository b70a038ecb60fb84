"""A short backward program for the driver tests: forward, then backward, on real time."""

from __future__ import annotations

from treadctl.core.program import Program

RETRO_SHORT = Program.model_validate(
    {
        "name": "retro-short",
        "title": "Forward, then backward (test)",
        "phases": [
            {"name": "forward", "duration": 3, "walk": "forward", "speed_kmh": 1.0},
            {"name": "backward", "duration": 4, "walk": "backward", "speed_kmh": 1.0},
        ],
    }
)
PROGRAMS = {RETRO_SHORT.name: RETRO_SHORT}
