"""Logging in and out (the page, and the same for scripts under /api), and the accounts an
admin manages (`/api/accounts`). Passwords are checked in a worker thread (Argon2 takes tens
of milliseconds and 64 MiB); failed attempts are throttled per name and per address."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from treadctl.clinic import accounts, logins
from treadctl.clinic.errors import FormError
from treadctl.clinic.logins import Login
from treadctl.clinic.throttle import LoginThrottle
from treadctl.clinic.web import pages
from treadctl.clinic.web.auth import COOKIE, Logins, Transaction, cookie, safe_next, user
from treadctl.clinic.web.bodies import json_body

WRONG = "wrong user name or password"
FIELD_MAX = 2048  # a user name or password longer than this is not one


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _too_many(wait_s: float) -> str:
    minutes = max(1, round(wait_s / 60))
    return f"too many failed log-ins: try again in {minutes} min"


class LoginRoutes:
    def __init__(
        self,
        tx: Transaction[Any],
        found: Logins,
        *,
        clock: Callable[[], datetime],
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._tx = tx
        self.logins = found
        self.now = clock
        self.throttle = throttle or LoginThrottle()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self.page, methods=["GET"]),
            Route("/login", self.submit, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/api/login", self.api_login, methods=["POST"]),
            Route("/api/logout", self.api_logout, methods=["POST"]),
            Route("/api/me", self.me, methods=["GET"]),
        ]

    async def _attempt(
        self, request: Request, name: str, password: str
    ) -> tuple[str, Login] | tuple[int, str]:
        """A new login's cookie token, or the status and message to refuse with."""
        if not name or not password or len(name) > FIELD_MAX or len(password) > FIELD_MAX:
            return 400, "give a user name and a password"
        address = _address(request)
        wait_s = self.throttle.wait_s(name, address, time.monotonic())
        if wait_s > 0:
            return 429, _too_many(wait_s)
        now = self.now()

        def work(db: Session) -> tuple[str, Login] | None:
            account = accounts.verify(db, name, password)
            if account is None:
                return None
            return logins.begin(db, account.id, now=now)

        found: tuple[str, Login] | None = await self._tx(work)
        if found is None:
            self.throttle.failed(name, address, time.monotonic())
            return 401, WRONG
        self.throttle.succeeded(name)
        return found

    async def page(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if user(request) is not None:
            return RedirectResponse(target, status_code=303)
        return await self._form(request, target, "", 200)

    async def _form(self, request: Request, target: str, problem: str, status: int) -> Response:
        empty = await self._tx(lambda db: accounts.count_accounts(db) == 0)
        return pages.render(
            request,
            "login.html",
            status,
            page="login",
            title="Log in",
            next=target,
            problem=problem,
            no_accounts=empty,
        )

    async def submit(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=8)
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        found = await self._attempt(request, name, password)
        if isinstance(found[0], int):
            status, problem = found
            response = await self._form(request, target, str(problem), status)
            if status == 429:
                response.headers["Retry-After"] = "60"
            return response
        token, _login = found
        response = RedirectResponse(target, status_code=303)
        cookie(response, token, secure=request.url.scheme == "https")
        return response

    async def api_login(self, request: Request) -> Response:
        try:
            body = await json_body(request)
        except FormError:
            body = None
        if not isinstance(body, dict):
            raise FormError('body: {"username": …, "password": …}')
        found = await self._attempt(
            request, str(body.get("username") or ""), str(body.get("password") or "")
        )
        if isinstance(found[0], int):
            status, problem = found
            code = {400: "bad_request", 401: "login", 429: "throttled"}[int(status)]
            return JSONResponse({"error": {"code": code, "message": problem}}, int(status))
        token, login = found
        response = JSONResponse(
            {"username": login.account.username, "role": login.account.role, "csrf": login.csrf}
        )
        cookie(response, token, secure=request.url.scheme == "https")
        return response

    async def _end(self, request: Request) -> None:
        token = request.cookies.get(COOKIE, "")
        if token:
            await self._tx(lambda db: logins.end(db, token))
            self.logins.forget(token)

    async def logout(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        expected = getattr(request.state, "csrf_token", None)
        if expected is not None and str(form.get("csrf", "")) == expected:
            await self._end(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def api_logout(self, request: Request) -> Response:
        await self._end(request)
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def me(self, request: Request) -> Response:
        account = user(request)
        assert account is not None  # the middleware let a logged-in request through only
        return JSONResponse({"username": account.username, "role": account.role})
