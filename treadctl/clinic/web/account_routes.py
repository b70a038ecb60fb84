"""`/api/accounts`: an admin lists, adds, and changes accounts (role, password, disabled).

The CLI (`treadctl users …`) does the same straight on the database, and is how the first
admin is made.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from treadctl.clinic import accounts
from treadctl.clinic.errors import FormError
from treadctl.clinic.views import ROLES, Account
from treadctl.clinic.web import pages
from treadctl.clinic.web.auth import Logins, Transaction, require_admin, user
from treadctl.clinic.web.bodies import json_body


def _plain(account: Account) -> dict[str, Any]:
    return {
        "username": account.username,
        "role": account.role,
        "created": account.created.isoformat(),
        "disabled": account.disabled.isoformat() if account.disabled else None,
    }


async def _object(request: Request) -> dict[str, Any]:
    try:
        body = await json_body(request)
    except FormError:
        body = None
    if not isinstance(body, dict):
        raise FormError("body: a JSON object")
    return body


class AccountRoutes:
    def __init__(
        self, tx: Transaction[Any], found: Logins, *, clock: Callable[[], datetime]
    ) -> None:
        self._tx = tx
        self.logins = found
        self.now = clock

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/accounts", self.list, methods=["GET"]),
            Route("/api/accounts", self.add, methods=["POST"]),
            Route("/api/accounts/{username}", self.change, methods=["PATCH"]),
            Route("/accounts", self.page, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        """The admin's page of accounts; its forms post to the routes above."""
        account = user(request)
        if account is None or not account.admin:
            why = "Accounts are managed by an admin: ask one to change yours."
            return pages.render(
                request, "forbidden.html", 403, page="", title="Admins only", why=why
            )
        found = await self._tx(accounts.list_accounts)
        return pages.render(
            request, "accounts.html", page="accounts", title="Accounts", accounts=found
        )

    async def list(self, request: Request) -> Response:
        require_admin(request)
        found = await self._tx(accounts.list_accounts)
        return JSONResponse([_plain(a) for a in found])

    async def add(self, request: Request) -> Response:
        require_admin(request)
        body = await _object(request)
        role = body.get("role", "therapist")
        if role not in ROLES:
            raise FormError(f"role: one of {', '.join(ROLES)}")
        name, password = body.get("username"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise FormError("username, password: strings")
        now = self.now()
        made = await self._tx(
            lambda db: accounts.add_account(db, name, password, admin=role == "admin", now=now)
        )
        return JSONResponse(_plain(made), 201)

    async def change(self, request: Request) -> Response:
        require_admin(request)
        body = await _object(request)
        name, now = request.path_params["username"], self.now()
        unknown = set(body) - {"role", "password", "disabled"}
        if unknown:
            raise FormError(f"{min(unknown)}: not a field (role, password, disabled)")
        if "disabled" in body and not isinstance(body["disabled"], bool):
            raise FormError("disabled: true or false")
        if "password" in body and not isinstance(body["password"], str):
            raise FormError("password: a string")

        def work(db: Session) -> Account:
            # checked first, so that a bad field changes nothing
            accounts.check_password(body["password"]) if "password" in body else None
            account = accounts.find(db, name)
            if "role" in body:
                account = accounts.set_role(db, name, str(body["role"]))
            if "password" in body:
                account = accounts.set_password(db, name, body["password"])
            if body.get("disabled") is True:
                account = accounts.disable(db, name, now=now)
            elif body.get("disabled") is False:
                account = accounts.enable(db, name)
            return account

        changed = await self._tx(work)
        self.logins.forget()  # a disabled account or new password ends its logins at once
        return JSONResponse(_plain(changed))
