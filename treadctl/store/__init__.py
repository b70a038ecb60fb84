"""Session store: every session recorded in SQLite as it happens, read back by the CLI."""

from treadctl.store.model import EndedHow, Sample, sample_from_snapshot
from treadctl.store.paths import database_path
from treadctl.store.schema import SCHEMA_VERSION, StoreError
from treadctl.store.writer import SessionStore

__all__ = [
    "SCHEMA_VERSION",
    "EndedHow",
    "Sample",
    "SessionStore",
    "StoreError",
    "database_path",
    "sample_from_snapshot",
]
