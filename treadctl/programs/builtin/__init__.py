"""The built-in programs, as TOML files (package data)."""
