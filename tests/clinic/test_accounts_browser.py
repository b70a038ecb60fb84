"""The login page and the admin's accounts page in Debian's Chromium, against the real clinic
service: a wrong password is told in words, an admin adds and disables a therapist (a bad
password refused next to its field), the therapist then cannot log in, and a therapist sees
neither the accounts page nor its link, nor the forms that change people."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.async_api import expect

from clinic.browser import Chromium, log_in, new_page
from clinic.service_rig import Http, clinic_settings, running_clinic
from mqtt.brokers import Broker

TESS_PASSWORD = "tess's long password"


async def test_login_page_and_the_accounts_page(
    broker: Broker, chromium: Chromium, tmp_path: Path
) -> None:
    settings = clinic_settings(
        broker, f"sqlite:///{tmp_path}/clinic.db", f"a{secrets.token_hex(3)}"
    )
    async with running_clinic(settings) as clinic, new_page(chromium) as page:
        base = clinic.http.base
        await page.goto(base + "/people")
        assert page.url == base + "/login?next=/people"  # nothing without a login
        await page.get_by_label("User name").fill("admin")
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-problem")).to_have_text("wrong user name or password")

        await log_in(page, base + "/accounts")
        await expect(page.get_by_role("link", name="Accounts")).to_have_attribute(
            "aria-current", "page"
        )
        form = page.locator("#add-account")
        await form.get_by_label("User name").fill("tess")
        await form.get_by_label("Password").fill("short")
        await form.get_by_role("button", name="Add the account").click()
        await expect(form.locator('[data-error-for="password"]')).to_contain_text(
            "10 to 1024 characters"
        )
        status, listed = await clinic.http.call("GET", "/api/accounts")
        assert [a["username"] for a in listed] == ["admin"]  # nothing stored

        await form.get_by_label("Password").fill(TESS_PASSWORD)
        await form.get_by_role("button", name="Add the account").click()
        row = page.get_by_role("row").filter(has_text="tess")
        await expect(row).to_contain_text("therapist")
        await row.get_by_role("button", name="Disable").click()
        await expect(page.get_by_role("row").filter(has_text="tess")).to_contain_text("disabled")
        status, _ = await Http(base).call(
            "POST", "/api/login", {"username": "tess", "password": TESS_PASSWORD}
        )
        assert status == 401

        await (
            page.get_by_role("row")
            .filter(has_text="tess")
            .get_by_role("button", name="Enable")
            .click()
        )
        await expect(page.get_by_role("row").filter(has_text="tess")).not_to_contain_text(
            "disabled"
        )

    async with running_clinic(settings) as clinic, new_page(chromium) as page:
        await log_in(page, clinic.http.base + "/", "tess", TESS_PASSWORD)
        await expect(page.get_by_role("link", name="People")).to_be_visible()
        await expect(page.get_by_role("link", name="Accounts")).to_have_count(0)
        answer = await page.goto(clinic.http.base + "/accounts")
        assert answer is not None
        assert answer.status == 403
        await expect(page.get_by_role("heading", level=1)).to_have_text("Admins only")
        await page.goto(clinic.http.base + "/people")  # people are an admin's to change
        await expect(page.get_by_text("Adding and changing people is for an admin")).to_be_visible()
        await expect(page.get_by_role("heading", name="Add a person")).to_have_count(0)
