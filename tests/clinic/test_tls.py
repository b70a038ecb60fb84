"""The clinic service answering HTTPS itself (`[clinic] tls_certfile`/`tls_keyfile`): a login
over TLS gets a `Secure` cookie, plain HTTP gets nothing, and half a pair is a config error."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pydantic
import pytest
import trustme

from clinic.service_rig import ADMIN, PASSWORD, add_account, clinic_settings, running_clinic
from mqtt.brokers import Broker
from treadctl.config import Settings


async def test_https_login_gets_a_secure_cookie(broker: Broker, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "dashboard.crt", tmp_path / "dashboard.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    database = f"sqlite:///{tmp_path / 'clinic.db'}"
    settings = clinic_settings(broker, database, f"t{secrets.token_hex(3)}")
    settings = settings.model_copy(
        update={
            "clinic": settings.clinic.model_copy(update={"tls_certfile": cert, "tls_keyfile": key})
        }
    )
    await asyncio.to_thread(add_account, database)
    async with running_clinic(settings, login=False) as clinic:
        port = clinic.service.port
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)

        def log_in() -> tuple[int, str]:
            request = urllib.request.Request(
                f"https://127.0.0.1:{port}/api/login",
                data=json.dumps({"username": ADMIN, "password": PASSWORD}).encode(),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10, context=trusted) as answer:
                return answer.status, answer.headers["Set-Cookie"]

        status, cookie = await asyncio.to_thread(log_in)
        assert status == 200
        assert "; Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie

        def plain() -> None:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10)

        with pytest.raises((urllib.error.URLError, ConnectionError)):
            await asyncio.to_thread(plain)


def test_a_certificate_without_its_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match=r"tls_certfile and clinic\.tls_keyfile"):
        Settings(clinic={"tls_certfile": tmp_path / "dashboard.crt"})
