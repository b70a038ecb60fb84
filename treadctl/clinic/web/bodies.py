"""A request's JSON body, read within a size limit: the one reader of the API's routes."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from treadctl.clinic.errors import FormError

MAX_BODY = 64 * 1024


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise FormError(f"body: larger than {MAX_BODY} bytes")
    try:
        return json.loads(raw or b"{}")
    except ValueError as exc:
        raise FormError(f"body: not JSON ({exc})") from None
