"""The clinic's command line (docs/clinic.md, Command line): `treadctl people`, `prescriptions`,
`annotate`, `measures`, `report`, `fit` and `users`, straight on the clinic's database.

The parsers are built without the clinic's database layer; each command imports it when it runs.
"""

from __future__ import annotations

from treadctl.cli_support import Subparsers
from treadctl.clinic.cli import people, prescriptions, records, users


def add_parsers(sub: Subparsers) -> None:
    people.add_parser(sub)
    prescriptions.add_parser(sub)
    records.add_parsers(sub)
    users.add_parser(sub)
