"""A reviewer in a real browser: the system's headless Chromium, driven by Playwright, against the real
inbox server on a loopback port and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

import pytest
from review_helpers import add_team, request
from review_web_helpers import CHROMIUM_ARGS, served, system_chromium

from orchestration_pipelines.review import get_item, item_history, raise_items
from orchestration_pipelines.review.web import create_app

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_page():
    """A fresh page in a fresh headless Chromium; never a downloaded browser."""
    executable = system_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(30_000)
            yield context.new_page()
        finally:
            browser.close()


def test_a_reviewer_signs_in_approves_and_the_item_leaves_the_queue(
    browser_page, opstore, tmp_path, monkeypatch
):
    monkeypatch.delenv("REVIEW_SESSION_SECRET", raising=False)
    tokens = add_team(opstore)
    raised = raise_items(opstore, [request("card-1"), request("card-2")]).created
    first, second = sorted(raised, key=lambda item_id: get_item(opstore, item_id).case_id)
    page = browser_page
    with served(create_app(opstore.url, data_dir=tmp_path, evidence_dir=tmp_path / "evidence")) as base:
        page.goto(f"{base}/inbox")
        assert page.url == f"{base}/signin"  # signed out: sent to sign in

        page.fill("#token", "wrong-token")
        page.click("button[type=submit]")
        assert "Unknown or disabled reviewer token" in page.inner_text("[role=alert]")

        page.fill("#token", tokens["ana"])
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/inbox")
        assert page.locator(f"tr[data-item-id='{first}']").is_visible()
        assert page.locator(f"tr[data-item-id='{second}']").is_visible()

        page.click(f"a[href='/items/{first}']")
        page.wait_for_url(f"{base}/items/{first}")
        assert page.inner_text("#status") == "open"
        page.locator("form:has(#decide-approve) input[name=comment]").fill("checked with the cardholder")
        page.click("#decide-approve")
        page.wait_for_url(f"{base}/inbox")
        assert page.locator(f"tr[data-item-id='{first}']").count() == 0  # left the queue
        assert page.locator(f"tr[data-item-id='{second}']").is_visible()
        item = get_item(opstore, first)
        assert (item.status, item.decision) == ("decided", "approve")
        assert [(e.actor, e.comment) for e in item_history(opstore, first)] == [
            ("ana", "checked with the cardholder")
        ]

        # The browser's own session cookie, but no CSRF token: refused, nothing recorded.
        forged = page.context.request.post(
            f"{base}/items/{second}/decisions", form={"action": "reject"}, max_redirects=0
        )
        assert forged.status == 403
        assert re.search("CSRF", forged.text())
        assert get_item(opstore, second).status == "open"
        assert item_history(opstore, second) == []

        page.click("#signout")
        page.wait_for_url(f"{base}/signin")
        page.goto(f"{base}/inbox")
        assert page.url == f"{base}/signin"
