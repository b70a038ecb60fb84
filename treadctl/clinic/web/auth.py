"""Who is asking: the login cookie, CSRF and same-origin checks, in front of every route.

- Pages without a login go to `/login`; API calls without one get 401.
- A request that changes something must come from the dashboard's own origin (the `Origin`
  header, when the browser sends one, names this host) and carry the login's CSRF token in
  `X-CSRF-Token`. The cookie is SameSite=Strict as well.
- **The e-stop never asks for a login**: a page whose login expired, or was replaced in another
  tab, still stops the belt. It needs only the `X-CSRF-Token` header (any value: a page on
  another site cannot send a custom header here without a CORS preflight, which is never
  granted) and a same-origin request; the command log names the account when the token is the
  login's, else "not logged in".
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from treadctl.clinic import logins
from treadctl.clinic.audit import NOT_LOGGED_IN
from treadctl.clinic.errors import ForbiddenError
from treadctl.clinic.logins import Login
from treadctl.clinic.views import Account

T = TypeVar("T")
Transaction = Callable[[Callable[[Session], T]], Awaitable[T]]
COOKIE = "treadctl_login"
CSRF_HEADER = "x-csrf-token"
CACHE_S = 10.0  # a login is looked up again after this long (a CLI `disable` takes effect)
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN = re.compile(r"/login|/static/.*|/api/health|/api/login|/favicon\.ico")
ESTOP = re.compile(r"/api/treadmills/[^/]+/estop")


class Logins:
    """Cookie → login, cached for CACHE_S so that a tap on E-STOP never waits for the database."""

    def __init__(self, tx: Transaction[Any], *, clock: Callable[[], datetime]) -> None:
        self._tx = tx
        self._now = clock
        self._cache: dict[str, tuple[float, Login | None]] = {}

    async def find(self, token: str) -> Login | None:
        if not token:
            return None
        hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        now = self._now()
        found: Login | None = await self._tx(lambda db: logins.resolve(db, token, now=now))
        if len(self._cache) > 1000:  # tokens of browsers long gone
            self._cache.clear()
        self._cache[token] = (time.monotonic(), found)
        return found

    def forget(self, token: str | None = None) -> None:
        """After a log-out (one token) or an account change (all)."""
        if token is None:
            self._cache.clear()
        else:
            self._cache.pop(token, None)


def user(request: Request) -> Account | None:
    found: Account | None = getattr(request.state, "user", None)
    return found


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET-like request of an old one
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _refuse(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class RequireLogin:
    """ASGI middleware: sets `request.state.user` and `.csrf_token`, refuses what must be."""

    def __init__(self, app: ASGIApp, found: Logins) -> None:
        self.app = app
        self.logins = found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.cookies.get(COOKIE, "")
        if request.method not in SAFE and ESTOP.fullmatch(request.url.path):
            refused = self._estop(request, token)
        else:
            login = await self.logins.find(token)
            request.state.user = login.account if login is not None else None
            request.state.csrf_token = login.csrf if login is not None else None
            refused = self._check(request, login)
        if refused is not None:
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _estop(self, request: Request, token: str) -> Response | None:
        """Checked without the database: the stop goes first; who sent it is looked up for
        the command log afterwards (`sender`)."""
        if not same_origin(request):
            return _refuse(403, "cross_origin", "refused: the request came from another site")
        if request.headers.get(CSRF_HEADER) is None:
            return _refuse(403, "csrf", f"an e-stop from the dashboard carries {CSRF_HEADER}")
        request.state.user = None
        request.state.login_token = token
        return None

    @staticmethod
    def _check(request: Request, login: Login | None) -> Response | None:
        path, unsafe = request.url.path, request.method not in SAFE
        if unsafe and not same_origin(request):
            return _refuse(403, "cross_origin", "refused: the request came from another site")
        if OPEN.fullmatch(path) or path == "/logout":
            return None  # their handlers check what they need
        sent = request.headers.get(CSRF_HEADER)
        if login is None:
            if path.startswith("/api/"):
                return _refuse(401, "login", "log in first (POST /api/login, or the dashboard)")
            return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        if unsafe and (sent is None or not hmac.compare_digest(sent, login.csrf)):
            return _refuse(
                403, "csrf", "this page's login has changed or ended: reload the page and retry"
            )
        return None


async def sender(request: Request, found: Logins) -> str:
    """Who sent this request, for the command log: the logged-in account, or for an e-stop
    (let through before its login was looked up) the login whose token it carried."""
    account = user(request)
    if account is not None:
        return account.username
    token: str | None = getattr(request.state, "login_token", None)
    if token:
        login = await found.find(token)
        sent = request.headers.get(CSRF_HEADER) or ""
        if login is not None and hmac.compare_digest(sent, login.csrf):
            return login.account.username
    return NOT_LOGGED_IN


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(logins.LONGEST.total_seconds()),
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )


def require_admin(request: Request) -> Account:
    account = user(request)
    if account is None or not account.admin:
        raise ForbiddenError("only an admin may do this")
    return account
