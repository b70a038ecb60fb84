"""Alembic's migrations of the clinic database (run by `clinic/database.py`, never by hand)."""
