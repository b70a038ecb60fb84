"""Accounts and logins on a real database, and the service's checks over real HTTP: log in and
out, the login's cookie and CSRF token, throttling, the admin role, the command log, and the
e-stop that never asks for a login."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from clinic.documents import session_document
from clinic.service_rig import ADMIN, PASSWORD, Http, clinic_settings, running_clinic
from mqtt.brokers import Broker
from treadctl.clinic import accounts, audit, logins
from treadctl.clinic.audit import log_command
from treadctl.clinic.database import open_database
from treadctl.clinic.errors import ConflictError, FormError
from treadctl.clinic.ingest import store_record
from treadctl.clinic.record import get_session
from treadctl.clinic.throttle import LoginThrottle

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _prefix() -> str:
    return f"t{secrets.token_hex(3)}"


# --- the data layer -------------------------------------------------------------------------


def test_passwords_are_argon2id_hashes_and_checked(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'clinic.db'}")
    with database.session() as db:
        made = accounts.add_account(db, " Anna ", "correct horse battery", admin=True, now=NOW)
        assert (made.username, made.role) == ("anna", "admin")
    with database.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM accounts")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "m=65536" in stored  # 64 MiB a guess
    assert "correct horse" not in stored
    with database.session() as db:
        assert accounts.verify(db, "ANNA", "correct horse battery") is not None
        assert accounts.verify(db, "anna", "correct horse batterY") is None
        assert accounts.verify(db, "nobody", "correct horse battery") is None
    database.close()


def test_bad_names_and_passwords_are_refused_naming_the_field(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'clinic.db'}")
    with database.session() as db:
        for name, password, field in [
            ("a b", "long enough pass", "username"),
            ("", "long enough pass", "username"),
            ("x" * 65, "long enough pass", "username"),
            ("bob", "short", "password"),
            ("bob", "nul\x00 in the middle", "password"),
        ]:
            with pytest.raises(FormError, match=f"^{field}:"):
                accounts.add_account(db, name, password, now=NOW)
        accounts.add_account(db, "bob", "long enough pass", now=NOW)
        with pytest.raises(ConflictError, match="already exists"):
            accounts.add_account(db, "BOB", "another long one", now=NOW)
        assert [a.username for a in accounts.list_accounts(db)] == ["bob"]
    database.close()


def test_the_last_admin_stays_and_disabling_ends_the_logins(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'clinic.db'}")
    with database.session() as db:
        anna = accounts.add_account(db, "anna", "correct horse battery", admin=True, now=NOW)
        with pytest.raises(ConflictError, match="last enabled admin"):
            accounts.disable(db, "anna", now=NOW)
        with pytest.raises(ConflictError, match="last enabled admin"):
            accounts.set_role(db, "anna", "therapist")
        bob = accounts.add_account(db, "bob", "long enough pass", now=NOW)
        token, _ = logins.begin(db, bob.id, now=NOW)
        assert logins.resolve(db, token, now=NOW) is not None
        accounts.disable(db, "bob", now=NOW)
        assert logins.resolve(db, token, now=NOW) is None
        assert accounts.verify(db, "bob", "long enough pass") is None  # disabled: no log-in
        token, _ = logins.begin(db, anna.id, now=NOW)
        accounts.set_password(db, "anna", "a brand new password")
        assert logins.resolve(db, token, now=NOW) is None
    database.close()


def test_a_login_ends_when_idle_or_old(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'clinic.db'}")
    with database.session() as db:
        anna = accounts.add_account(db, "anna", "correct horse battery", now=NOW)
        token, login = logins.begin(db, anna.id, now=NOW)
        later = NOW + logins.IDLE - timedelta(minutes=1)
        assert logins.resolve(db, token, now=later) == logins.Login(
            login.account, login.csrf, later + logins.IDLE
        )
        assert logins.resolve(db, token, now=later + logins.IDLE + timedelta(seconds=1)) is None
        token, _ = logins.begin(db, anna.id, now=NOW)
        step, when = logins.IDLE - timedelta(hours=1), NOW
        while when + step < NOW + logins.LONGEST:  # in use all along
            when += step
            assert logins.resolve(db, token, now=when) is not None
        assert logins.resolve(db, token, now=NOW + logins.LONGEST + timedelta(seconds=1)) is None
        assert logins.resolve(db, "made-up", now=NOW) is None
        with database.engine.connect() as conn:
            hashes = conn.execute(sa.text("SELECT token_sha256 FROM logins")).scalars().all()
        assert token not in hashes  # only its hash is kept
    database.close()


def test_who_started_a_session_supervised_it(tmp_path: Path) -> None:
    """A session the dashboard started: "supervised by" is the account that sent the accepted
    start, "pain before" the pre-session check's; a session it did not start has neither."""
    database = open_database(f"sqlite:///{tmp_path / 'clinic.db'}")
    started = NOW + timedelta(seconds=40)  # confirmed at the treadmill, after the countdown
    with database.session() as db:
        for who, device, person, outcome in [
            ("tess", "tm-1", "mrs-k", "ok"),
            ("anna", "tm-1", "mrs-k", "refused: interlock_active"),  # later, but refused
            ("anna", "tm-2", "mr-b", "ok"),
        ]:
            body = {"person": person, "check": {"pain_before": 3}}
            log_command(
                db,
                now=NOW,
                username=who,
                device=device,
                command="start",
                body=body,
                outcome=outcome,
            )
        store_record(db, session_document("s-1", started=started), now=NOW)
        store_record(db, session_document("s-2", device="tm-2", started=started), now=NOW)
        late = session_document("s-3", started=NOW + audit.START_WINDOW + timedelta(minutes=1))
        store_record(db, late, now=NOW)
        one = get_session(db, "s-1").annotation
        assert one is not None
        assert (one.supervised_by, one.pain_before) == ("tess", 3)
        assert get_session(db, "s-2").annotation is None  # tm-2's start was for mr-b
        assert get_session(db, "s-3").annotation is None  # no start just before it
    database.close()


def test_throttling_per_name_and_per_address() -> None:
    throttle = LoginThrottle(window_s=900, per_name=5, per_address=20)
    for i in range(5):
        assert throttle.wait_s("anna", "10.0.0.1", now=float(i)) == 0
        throttle.failed("anna", "10.0.0.1", now=float(i))
    assert throttle.wait_s("Anna", "10.0.0.9", now=10) == pytest.approx(890)  # any address
    assert throttle.wait_s("anna", "10.0.0.1", now=900.5) == 0  # the first failure aged out
    assert throttle.wait_s("bob", "10.0.0.1", now=10) == 0  # the address is below its limit
    for i in range(16):  # 4 of anna's are still counted (one aged out above)
        throttle.failed(f"user{i}", "10.0.0.1", now=20.0 + i)
    assert throttle.wait_s("carol", "10.0.0.1", now=40) > 0  # 20 from one address
    assert throttle.wait_s("carol", "10.0.0.2", now=40) == 0
    throttle.succeeded("anna")
    assert throttle.wait_s("anna", "10.0.0.2", now=40) == 0


# --- over HTTP ------------------------------------------------------------------------------


async def test_nothing_without_a_login_but_health_and_the_login_page(
    broker: Broker, database_url: str
) -> None:
    settings = clinic_settings(broker, database_url, _prefix())
    async with running_clinic(settings) as clinic:
        stranger = clinic.http.anonymous()
        assert (await stranger.call("GET", "/api/health"))[0] == 200
        status, answer = await stranger.call("GET", "/api/people")
        assert status == 401
        assert answer["error"]["code"] == "login"
        status, page = await stranger.call("GET", "/login")
        assert status == 200
        assert b'name="password"' in page
        status, _ = await stranger.call("POST", "/api/people", {"id": "p-1"})
        assert status == 401
        status, people = await clinic.http.call("GET", "/api/people")
        assert (status, people) == (200, [])


async def test_wrong_passwords_are_throttled_and_say_nothing_of_names(
    broker: Broker, database_url: str
) -> None:
    settings = clinic_settings(broker, database_url, _prefix())
    async with running_clinic(settings) as clinic:
        stranger = clinic.http.anonymous()
        wrong = {"username": ADMIN, "password": "not the password"}
        unknown = {"username": "nobody", "password": "not the password"}
        status, answer = await stranger.call("POST", "/api/login", unknown)
        assert (status, answer["error"]["message"]) == (401, "wrong user name or password")
        for _ in range(5):
            status, answer = await stranger.call("POST", "/api/login", wrong)
            assert (status, answer["error"]["message"]) == (401, "wrong user name or password")
        status, answer = await stranger.call(
            "POST", "/api/login", {"username": ADMIN, "password": PASSWORD}
        )
        assert status == 429  # even the right password, until the window passes
        assert answer["error"]["code"] == "throttled"
        status, answer = await stranger.call("POST", "/api/login", "not an object")
        assert status == 400


async def test_csrf_origin_and_the_admin_role(broker: Broker, database_url: str) -> None:
    settings = clinic_settings(broker, database_url, _prefix())
    async with running_clinic(settings) as clinic:
        http = clinic.http
        no_token = Http(http.base, None, http.jar)  # the cookie without the page's token
        status, answer = await no_token.call("POST", "/api/people", {"id": "p-1"})
        assert (status, answer["error"]["code"]) == (403, "csrf")
        status, answer = await http.call(
            "POST", "/api/people", {"id": "p-1"}, headers={"Origin": "http://evil.example"}
        )
        assert (status, answer["error"]["code"]) == (403, "cross_origin")
        status, _ = await http.call("GET", "/api/people/p-1")
        assert status == 404  # neither request changed anything

        status, made = await http.call(
            "POST",
            "/api/accounts",
            {"username": "tess", "password": "a therapist's password", "role": "therapist"},
        )
        assert (status, made["role"]) == (201, "therapist")
        tess = await http.anonymous().login("tess", "a therapist's password")
        status, answer = await tess.call("POST", "/api/people", {"id": "p-1"})
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        assert (await tess.call("GET", "/api/accounts"))[0] == 403
        assert (await tess.call("GET", "/api/people"))[0] == 200
        status, me = await tess.call("GET", "/api/me")
        assert me == {"username": "tess", "role": "therapist"}

        status, _ = await http.call("PATCH", "/api/accounts/tess", {"disabled": True})
        assert status == 200
        assert (await tess.call("GET", "/api/people"))[0] == 401  # at once, not in 10 s
        status, answer = await http.call("PATCH", "/api/accounts/tess", {"colour": "red"})
        assert (status, answer["error"]["message"]) == (
            400,
            "colour: not a field (role, password, disabled)",
        )


async def test_logging_out_ends_the_login(broker: Broker, database_url: str) -> None:
    settings = clinic_settings(broker, database_url, _prefix())
    async with running_clinic(settings) as clinic:
        http = clinic.http
        cookie = http.cookie()
        assert (await http.call("POST", "/api/logout"))[0] == 200
        replay = http.anonymous()
        status, _ = await replay.call("GET", "/api/people", headers={"Cookie": cookie})
        assert status == 401  # the old cookie, kept by someone, no longer works


async def test_the_estop_needs_no_login_and_every_command_is_logged(
    broker: Broker, database_url: str
) -> None:
    settings = clinic_settings(broker, database_url, _prefix())
    async with running_clinic(settings) as clinic:
        http = clinic.http
        stranger = clinic.http.anonymous()
        status, answer = await stranger.call("POST", "/api/treadmills/tm-1/estop")
        assert (status, answer["error"]["code"]) == (403, "csrf")  # a custom header is needed
        status, _ = await stranger.call(
            "POST", "/api/treadmills/tm-1/estop", headers={"X-CSRF-Token": "stale"}
        )
        assert status == 202
        status, _ = await http.call("POST", "/api/treadmills/tm-1/estop")
        assert status == 202
        status, _ = await http.call("POST", "/api/treadmills/tm-1/pause")
        assert status == 404  # not heard of on the broker: refused, and logged as such
        status, log = await http.call("GET", "/api/commands?device=tm-1")
        assert status == 200
        assert [(c["username"], c["command"], c["outcome"][:7]) for c in log] == [
            (ADMIN, "pause", "refused"),
            (ADMIN, "estop", "ok"),
            ("not logged in", "estop", "ok"),
        ]
