"""The clinic service's errors: each says what is wrong in words a therapist can act on.

The CLI turns them into exit codes, the web API into HTTP statuses (400, 404, 409)."""

from __future__ import annotations


class ClinicError(Exception):
    """Something the clinic service refuses; nothing was changed."""


class FormError(ClinicError, ValueError):
    """Bad input; the message names each field that is wrong."""


class NotFoundError(ClinicError):
    """No person, prescription, session or step with that id."""


class ConflictError(ClinicError):
    """The request contradicts what is stored: an id taken, an archived person, a program the
    person's limits forbid, a step already decided."""


class ForbiddenError(ClinicError):
    """Logged in, but this needs another role (an admin)."""
