"""The reviewer inbox app on a real operational store (SQLite and PostgreSQL): sign-in, CSRF, the pages,
the JSON API's 401/403/409, and evidence paths."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from instance_helpers import REPO
from review_helpers import add_team, request
from review_web_helpers import free_port, served
from starlette.testclient import TestClient

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import disable_reviewer, get_item, item_history, raise_items
from orchestration_pipelines.review.web import create_app

BASE = "http://127.0.0.1"


@dataclass
class Inbox:
    store: OpStore
    app: object
    tokens: dict[str, str]
    items: dict[str, str]  # case id -> item id
    evidence_dir: Path

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE, follow_redirects=False)

    def signed_in(self, reviewer: str) -> TestClient:
        client = self.client()
        response = client.post("/signin", data={"token": self.tokens[reviewer], "csrf_token": csrf(client)})
        assert response.status_code == 303, response.text
        return client

    def bearer(self, reviewer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[reviewer]}"}


def csrf(client: TestClient, path: str = "/signin") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.fixture
def inbox(opstore, tmp_path, monkeypatch) -> Inbox:
    monkeypatch.delenv("REVIEW_SESSION_SECRET", raising=False)
    tokens = add_team(opstore)
    now = datetime.now(UTC)
    evidence_dir = tmp_path / "evidence"
    (evidence_dir / "pump-7").mkdir(parents=True)
    (evidence_dir / "pump-7" / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n-test-")
    (tmp_path / "secret.png").write_bytes(b"\x89PNG-outside")
    raise_items(
        opstore,
        [
            request("card-1"),
            request("card-2", kind="fraud_analyst_review", reason_codes=["velocity", "new_device"]),
            request("big-block", amount_eur=9000.0),
            request(
                "ticket-9", kind="support_high_risk_reply", reply="We refund you.", article_ids=["kb-12"]
            ),
            request("pump-7", kind="maintenance_low_confidence_alert", evidence_path="pump-7/plot.png"),
            request("pump-8", kind="maintenance_low_confidence_alert", evidence_path="../secret.png"),
        ],
        now=now,
    )
    raise_items(opstore, [request("late-1")], now=now - timedelta(days=1))  # past its 1 h deadline
    items = {
        case: get_item_id(opstore, case)
        for case in ("card-1", "card-2", "big-block", "ticket-9", "pump-7", "pump-8", "late-1")
    }
    app = create_app(opstore.url, data_dir=tmp_path, evidence_dir=evidence_dir)
    return Inbox(opstore, app, tokens, items, evidence_dir)


def get_item_id(store: OpStore, case_id: str) -> str:
    with store.transaction() as cur:
        return cur.execute("SELECT item_id FROM review_items WHERE case_id = ?", (case_id,)).fetchone()[0]


# -- sign-in -------------------------------------------------------------------------------------


def test_signing_in_with_a_token_shows_the_reviewers_queue(inbox):
    client = inbox.signed_in("ana")
    page = client.get("/inbox")
    assert page.status_code == 200
    for case in ("card-1", "card-2", "big-block", "late-1"):
        assert inbox.items[case] in page.text
    for case in ("ticket-9", "pump-7"):  # other roles' queues
        assert inbox.items[case] not in page.text
    assert "Ana Analyst" in page.text


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 500])
def test_a_bad_token_signs_nobody_in(inbox, token):
    client = inbox.client()
    response = client.post("/signin", data={"token": token, "csrf_token": csrf(client)})
    assert response.status_code == 401
    assert "Unknown or disabled" in response.text
    assert client.get("/inbox").headers["location"] == "/signin"


def test_a_disabled_reviewer_cannot_sign_in_and_is_signed_out_at_once(inbox):
    client = inbox.signed_in("bob")
    assert client.get("/inbox").status_code == 200
    disable_reviewer(inbox.store, "bob")
    assert client.get("/inbox").headers["location"] == "/signin"  # the live session ends
    again = inbox.client()
    assert (
        again.post("/signin", data={"token": inbox.tokens["bob"], "csrf_token": csrf(again)}).status_code
        == 401
    )
    assert again.get("/api/items", headers=inbox.bearer("bob")).status_code == 401


def test_signing_in_starts_a_new_session_and_signing_out_ends_it(inbox):
    client = inbox.client()
    before = csrf(client)
    client.post("/signin", data={"token": inbox.tokens["ana"], "csrf_token": before})
    after = csrf(client, "/inbox")
    assert after != before  # no session fixation: the pre-sign-in token is gone
    assert client.post("/signout", data={"csrf_token": after}).headers["location"] == "/signin"
    assert client.get("/inbox").headers["location"] == "/signin"


def test_the_session_cookie_is_strict_and_the_token_never_in_it(inbox):
    client = inbox.client()
    response = client.post("/signin", data={"token": inbox.tokens["ana"], "csrf_token": csrf(client)})
    cookie = response.headers["set-cookie"]
    assert "samesite=strict" in cookie.lower() and "httponly" in cookie.lower()
    assert inbox.tokens["ana"] not in cookie


# -- CSRF ----------------------------------------------------------------------------------------


def test_a_form_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing(inbox):
    client = inbox.signed_in("ana")
    item_id = inbox.items["card-1"]
    other = inbox.signed_in("bob")
    for data in (
        {"action": "approve"},
        {"action": "approve", "csrf_token": ""},
        {"action": "approve", "csrf_token": csrf(other, "/inbox")},  # another session's token
    ):
        response = client.post(f"/items/{item_id}/decisions", data=data)
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert get_item(inbox.store, item_id).status == "open"
    assert item_history(inbox.store, item_id) == []
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/inbox").status_code == 200  # still signed in


def test_signing_in_needs_the_csrf_token_too(inbox):
    client = inbox.client()
    client.get("/signin")
    assert client.post("/signin", data={"token": inbox.tokens["ana"]}).status_code == 403
    assert client.get("/inbox").headers["location"] == "/signin"


# -- pages ---------------------------------------------------------------------------------------


def test_approving_in_the_page_takes_the_item_out_of_the_queue(inbox):
    client = inbox.signed_in("ana")
    item_id = inbox.items["card-1"]
    token = csrf(client, f"/items/{item_id}")
    response = client.post(
        f"/items/{item_id}/decisions",
        data={"action": "approve", "version": "1", "comment": "confirmed", "csrf_token": token},
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    inbox_page = client.get("/inbox").text
    assert item_id not in inbox_page
    assert "approve recorded for case card-1" in inbox_page
    assert "recorded for case" not in client.get("/inbox").text  # a notice shows once
    item = get_item(inbox.store, item_id)
    assert (item.status, item.decision) == ("decided", "approve")
    [event] = item_history(inbox.store, item_id)
    assert (event.actor, event.action, event.comment, event.outcome) == (
        "ana",
        "approve",
        "confirmed",
        "accepted",
    )


def test_the_item_page_offers_only_the_decisions_the_roles_allow(inbox):
    analyst = inbox.signed_in("ana").get(f"/items/{inbox.items['card-2']}").text
    assert set(re.findall(r'id="decide-(\w+)"', analyst)) == {
        "approve",
        "reject",
        "correct",
        "assign",
        "comment",
    }
    assert "velocity" in analyst and "new_device" in analyst  # reason codes
    assert '<option value="legitimate">' in analyst  # the policy's correction values
    admin = inbox.signed_in("adm").get(f"/items/{inbox.items['card-2']}").text
    assert set(re.findall(r'id="decide-(\w+)"', admin)) == {"assign", "comment"}
    agent = inbox.signed_in("sup").get(f"/items/{inbox.items['ticket-9']}").text
    assert set(re.findall(r'id="decide-(\w+)"', agent)) == {"comment"}
    assert "We refund you." in agent and "kb-12" in agent  # the drafted reply and its cited article


def test_an_item_is_shown_only_to_roles_with_a_part_in_its_kind(inbox):
    support = inbox.signed_in("sup")
    assert support.get(f"/items/{inbox.items['card-1']}").status_code == 403
    assert support.get(f"/items/{inbox.items['pump-7']}/evidence").status_code == 403
    api = inbox.client().get(f"/api/items/{inbox.items['card-1']}", headers=inbox.bearer("plan"))
    assert api.status_code == 403 and "no part in fraud_block_pending_approval" in api.json()["error"]
    assert support.get(f"/items/{inbox.items['ticket-9']}").status_code == 200  # comment only, but a part


def test_a_decided_item_offers_only_comments_and_shows_its_history_and_case_story(inbox):
    client = inbox.signed_in("ana")
    item_id = inbox.items["card-1"]
    client.post(
        f"/items/{item_id}/decisions",
        data={"action": "approve", "comment": "card stolen", "csrf_token": csrf(client, f"/items/{item_id}")},
    )
    page = client.get(f"/items/{item_id}").text
    assert set(re.findall(r'id="decide-(\w+)"', page)) == {"comment"}
    assert "card stolen" in page and "accepted" in page
    assert f"<title>{item_id} · Review inbox</title>" in page
    story = page[page.index("<h2>Case story</h2>") :]
    assert "story-automatic" in story and "story-review" in story and "story-action" in story
    assert "block_card" in story and "fraud-v1" in story  # the effect waiting, the model that raised it
    api = inbox.client().get(f"/api/items/{item_id}", headers=inbox.bearer("ana")).json()
    assert [e["source"] for e in api["story"]][-2:] == ["review", "action"]


def test_a_correction_in_the_page_records_the_corrected_label(inbox):
    client = inbox.signed_in("ana")
    item_id = inbox.items["card-2"]
    response = client.post(
        f"/items/{item_id}/decisions",
        data={"action": "correct", "value": "legitimate", "csrf_token": csrf(client, f"/items/{item_id}")},
    )
    assert response.status_code == 303
    item = get_item(inbox.store, item_id)
    assert (item.decision, item.decided_value) == ("correct", "legitimate")


def test_the_queue_highlights_overdue_items_and_filters_by_deadline_role_and_workflow(inbox):
    client = inbox.signed_in("sen")
    page = client.get("/inbox").text
    late = inbox.items["late-1"]
    assert re.search(rf'<tr class="overdue" data-item-id="{late}"', page)
    assert not re.search(rf'<tr class="overdue" data-item-id="{inbox.items["card-1"]}"', page)
    overdue_only = client.get("/inbox?due=overdue").text
    assert late in overdue_only and inbox.items["card-1"] not in overdue_only
    assert inbox.items["card-1"] in client.get("/inbox?role=analyst&workflow=fraud").text
    assert inbox.items["card-1"] not in client.get("/inbox?role=senior_analyst").text
    assert client.get("/inbox?workflow=support").text.count("data-item-id") == 0
    assert client.get("/inbox?role=admin").status_code == 403  # a role sen does not hold
    assert client.get("/inbox?due=yesterday").status_code == 400


def test_a_long_queue_shows_the_soonest_items_and_says_how_many_wait(inbox, monkeypatch):
    from orchestration_pipelines.review.web import app as web_app

    monkeypatch.setattr(web_app, "QUEUE_LIMIT", 2)
    client = inbox.signed_in("ana")
    page = client.get("/inbox").text
    assert page.count("data-item-id") == 2 and "The 2 soonest of 4 items." in page
    assert re.search(rf'data-item-id="{inbox.items["late-1"]}"', page)  # the most overdue comes first
    api = client.get("/api/items?limit=3", headers=inbox.bearer("ana")).json()
    assert (len(api["items"]), api["total"]) == (3, 4)
    assert client.get("/api/items?limit=0", headers=inbox.bearer("ana")).status_code == 400
    assert client.get("/api/items?limit=x", headers=inbox.bearer("ana")).status_code == 400


def test_pages_escape_what_the_workflows_wrote(inbox):
    raise_items(inbox.store, [request("xss-1", note="<script>alert(1)</script>")])
    page = inbox.signed_in("ana").get(f"/items/{get_item_id(inbox.store, 'xss-1')}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_an_unknown_item_is_404(inbox):
    client = inbox.signed_in("ana")
    assert client.get("/items/rv_nope").status_code == 404
    assert client.get("/api/items/rv_nope", headers=inbox.bearer("ana")).status_code == 404


# -- evidence ------------------------------------------------------------------------------------


def test_evidence_inside_the_folder_is_served_and_a_path_out_of_it_is_not(inbox):
    client = inbox.signed_in("plan")
    good = client.get(f"/items/{inbox.items['pump-7']}/evidence")
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    assert good.content.endswith(b"-test-")
    assert (
        f'src="/items/{inbox.items["pump-7"]}/evidence"' in client.get(f"/items/{inbox.items['pump-7']}").text
    )
    assert client.get(f"/items/{inbox.items['pump-8']}/evidence").status_code == 404  # ../secret.png
    assert "/evidence" not in client.get(f"/items/{inbox.items['pump-8']}").text
    none_named = inbox.signed_in("ana").get(f"/items/{inbox.items['card-1']}/evidence")
    assert none_named.status_code == 404
    assert inbox.client().get(f"/items/{inbox.items['pump-7']}/evidence").status_code == 303  # signed out


# -- headers and hosts ---------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(inbox):
    for response in (inbox.client().get("/signin"), inbox.client().get("/static/review.css")):
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_foreign_host_header_is_refused(inbox):
    assert TestClient(inbox.app, base_url="http://evil.example").get("/signin").status_code == 400
    for loopback in ("http://localhost:8765", "http://[::1]:8765", "http://127.0.0.1:8765"):
        assert TestClient(inbox.app, base_url=loopback).get("/signin").status_code == 200


# -- JSON API ------------------------------------------------------------------------------------


def test_the_api_wants_a_bearer_token_and_ignores_the_session_cookie(inbox):
    client = inbox.signed_in("ana")
    assert client.get("/api/items").status_code == 401
    assert client.get("/api/items", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/items", headers={"Authorization": inbox.tokens["ana"]}).status_code == 401
    item_id = inbox.items["card-1"]
    assert client.post(f"/api/items/{item_id}/decisions", json={"action": "approve"}).status_code == 401
    assert get_item(inbox.store, item_id).status == "open"


def test_the_api_lists_and_shows_items(inbox):
    client = inbox.client()
    listed = client.get("/api/items?workflow=maintenance", headers=inbox.bearer("plan")).json()["items"]
    assert {i["case_id"] for i in listed} == {"pump-7", "pump-8"}
    shown = client.get(f"/api/items/{inbox.items['pump-7']}", headers=inbox.bearer("plan")).json()
    assert shown["item"]["context"]["evidence_path"] == "pump-7/plot.png"
    assert shown["allowed_actions"] == ["approve", "reject", "correct", "assign", "comment"]
    assert client.get("/api/items?role=analyst", headers=inbox.bearer("plan")).status_code == 403


def test_api_decision_by_a_role_without_the_right_is_403_and_audited(inbox):
    item_id = inbox.items["card-1"]
    response = inbox.client().post(
        f"/api/items/{item_id}/decisions", headers=inbox.bearer("adm"), json={"action": "approve"}
    )
    assert response.status_code == 403
    assert "may not approve" in response.json()["error"]
    [event] = item_history(inbox.store, item_id)
    assert (event.actor, event.outcome) == ("adm", "refused")
    with inbox.store.transaction() as cur:
        audited = cur.execute(
            "SELECT actor FROM audit_log WHERE event = 'review_refused' AND subject = 'card-1'"
        ).fetchall()
    assert audited == [("adm",)]
    assert get_item(inbox.store, item_id).status == "open"


def test_api_second_decision_and_stale_version_are_409(inbox):
    client, item_id = inbox.client(), inbox.items["card-1"]
    url = f"/api/items/{item_id}/decisions"
    first = client.post(url, headers=inbox.bearer("ana"), json={"action": "approve", "version": 1})
    assert first.status_code == 200
    assert first.json()["item"]["status"] == "decided" and first.json()["actions"]
    again = client.post(url, headers=inbox.bearer("bob"), json={"action": "reject"})
    assert again.status_code == 409 and "already decided" in again.json()["error"]
    other = inbox.items["card-2"]
    assign = client.post(
        f"/api/items/{other}/decisions",
        headers=inbox.bearer("ana"),
        json={"action": "assign", "value": "bob"},
    )
    assert assign.status_code == 200
    stale = client.post(
        f"/api/items/{other}/decisions", headers=inbox.bearer("bob"), json={"action": "approve", "version": 1}
    )
    assert stale.status_code == 409 and "changed since version 1 (now 2)" in stale.json()["error"]
    assert get_item(inbox.store, other).status == "assigned"
    assert item_history(inbox.store, other)[-1].outcome == "refused"  # recorded and audited, as any refusal


def test_api_rejects_malformed_decisions(inbox):
    client, url = inbox.client(), f"/api/items/{inbox.items['card-2']}/decisions"
    headers = inbox.bearer("ana")
    assert (
        client.post(
            url,
            headers=headers,
            content=b"{",
        ).status_code
        == 415
    )
    assert (
        client.post(url, headers={**headers, "Content-Type": "application/json"}, content=b"{").status_code
        == 400
    )
    assert client.post(url, headers=headers, json=["approve"]).status_code == 400
    assert client.post(url, headers=headers, json={"action": "delete"}).status_code == 400
    assert client.post(url, headers=headers, json={"action": "approve", "version": "one"}).status_code == 400
    assert client.post(url, headers=headers, json={"action": "correct", "value": 1}).status_code == 400
    bad_label = client.post(url, headers=headers, json={"action": "correct", "value": "maybe"})
    assert bad_label.status_code == 422 and "not a is_fraud value" in bad_label.json()["error"]
    assert get_item(inbox.store, inbox.items["card-2"]).status == "open"


def test_a_first_of_two_approvals_in_the_page_says_who_is_still_needed(inbox):
    client = inbox.signed_in("ana")
    item_id = inbox.items["big-block"]
    client.post(
        f"/items/{item_id}/decisions",
        data={"action": "approve", "version": "1", "csrf_token": csrf(client, f"/items/{item_id}")},
    )
    page = client.get("/inbox").text
    assert re.search(r"approve recorded for case big-block; waiting for 1 more distinct approver", page)
    assert item_id in page  # still open
    item_page = client.get(f"/items/{item_id}").text
    assert re.search(r'<ul id="approvals"><li>ana \(analyst\)', item_page)


def test_four_eyes_needs_two_people_through_the_api(inbox):
    client, url = inbox.client(), f"/api/items/{inbox.items['big-block']}/decisions"
    first = client.post(url, headers=inbox.bearer("ana"), json={"action": "approve"})
    assert first.status_code == 200 and first.json()["awaiting"]
    assert client.post(url, headers=inbox.bearer("ana"), json={"action": "approve"}).status_code == 422
    assert client.post(url, headers=inbox.bearer("sen"), json={"action": "approve"}).json()["item"][
        "status"
    ] == ("decided")


def test_racing_api_approvals_on_a_real_server_give_one_outcome(inbox):
    """Eight reviewers' requests at once on the real server: exactly one 200, the rest 409."""
    item_id = inbox.items["card-1"]
    statuses: list[int] = []
    with served(inbox.app) as base:
        barrier = threading.Barrier(8)

        def approve(reviewer: str) -> None:
            body = json.dumps({"action": "approve" if reviewer != "bob" else "reject"}).encode()
            req = urllib.request.Request(
                f"{base}/api/items/{item_id}/decisions",
                data=body,
                headers={**inbox.bearer(reviewer), "Content-Type": "application/json"},
            )
            barrier.wait()
            try:
                with urllib.request.urlopen(req, timeout=60) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)

        threads = [
            threading.Thread(target=approve, args=(r,)) for r in ["ana", "bob", "sen"] * 2 + ["ana", "sen"]
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] + [409] * 7
    accepted = [e for e in item_history(inbox.store, item_id) if e.outcome == "accepted"]
    assert len(accepted) == 1


def test_the_served_process_answers_on_loopback_with_its_guards(tmp_path):
    """What ``make review`` runs: ``python -m orchestration_pipelines.review.web`` on REVIEW_PORT."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OP_DATA_DIR": str(tmp_path), "REVIEW_PORT": str(port)}
    env["OP_OPSTORE_URL"] = f"sqlite:///{tmp_path / 'ops.sqlite'}"
    for name in ("REVIEW_HOST", "REVIEW_ALLOW_REMOTE", "REVIEW_SESSION_SECRET"):
        env.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestration_pipelines.review.web"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=5) as page:
                    break
            except OSError:
                assert time.monotonic() < deadline, "the inbox did not answer within 120 s"
                time.sleep(0.5)
        assert page.status == 200 and page.headers["x-frame-options"] == "DENY"
        assert "server" not in {name.lower() for name in page.headers}
        assert (tmp_path / "review_session_secret").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_store_that_is_down_gives_503_not_a_stack_trace(tmp_path, monkeypatch):
    monkeypatch.delenv("REVIEW_SESSION_SECRET", raising=False)
    app = create_app("postgresql://postgres@127.0.0.1:1/none", data_dir=tmp_path)  # nothing listens on 1
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    signin = client.post("/signin", data={"token": "anything", "csrf_token": csrf(client)})
    assert signin.status_code == 503 and "unreachable" in signin.text
    api = client.get("/api/items", headers={"Authorization": "Bearer anything"})
    assert api.status_code == 503 and "unreachable" in api.json()["error"]
