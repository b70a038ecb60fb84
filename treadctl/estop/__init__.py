"""Dedicated e-stop inputs on their own serial ports (PRODUCT.md, Safety rule 5; docs/estop.md)."""
