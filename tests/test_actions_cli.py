"""``orchestration-pipelines actions``: list the outbox, retry a failed action."""

import json
import os
from datetime import UTC, datetime

import pytest
from webhook_server import FlakyReceiver

from orchestration_pipelines.cli import main
from orchestration_pipelines.connectors import HttpConnector, connectors_by_action
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review.actions import deliver_pending_actions, enqueue_action

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def test_list_and_retry_a_failed_action(data_env, capsys):
    store = OpStore(os.environ["OP_OPSTORE_URL"])
    with store.transaction() as cur:
        action_id = enqueue_action(
            cur, workflow="fraud", case_id="T-1", action="block_card", payload={"card_id": "C-1"}, now=NOW
        ).action_id
    with FlakyReceiver(failures=1, fail_status=404) as receiver:  # a wrong URL: refused
        cards = HttpConnector("card_service", receiver.base_url, ["block_card"])
        deliver_pending_actions(store, connectors_by_action(cards), NOW)
    main(["actions", "list", "--status", "failed"])
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (listed["action_id"], listed["status"], listed["case_id"]) == (action_id, "failed", "T-1")
    assert "HTTP 404" in listed["last_error"]
    main(["actions", "retry", action_id, "--actor", "ops:ana"])
    assert "queued again" in capsys.readouterr().out
    main(["actions", "list", "--case", "T-1"])
    assert json.loads(capsys.readouterr().out)["status"] == "pending"
    with pytest.raises(SystemExit, match="no failed action"):
        main(["actions", "retry", action_id, "--actor", "ops:ana"])
