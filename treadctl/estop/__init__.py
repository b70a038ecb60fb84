"""Dedicated e-stop inputs on their own serial ports (docs/safety.md rule 5; docs/estop.md)."""
