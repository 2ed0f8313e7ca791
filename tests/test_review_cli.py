"""The review commands as a reviewer runs them: real subprocesses against a real store."""

import os
import subprocess
import sys
from pathlib import Path

from review_helpers import request

from orchestration_pipelines.review import get_item, raise_items

CLI = str(Path(sys.executable).with_name("orchestration-pipelines"))


def run(store, *args, token=None, check=True):
    env = {**os.environ, "OP_OPSTORE_URL": store.url}
    env.pop("REVIEW_TOKEN", None)
    if token:
        env["REVIEW_TOKEN"] = token
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_a_reviewer_signs_in_with_their_token_decides_and_reads_the_story(opstore):
    added = run(opstore, "review", "reviewer", "add", "ana", "--name", "Ana Analyst", "--roles", "analyst")
    token = added.stdout.strip().splitlines()[-1]
    sam = run(opstore, "review", "reviewer", "add", "sam", "--name", "Sam", "--roles", "support_agent")
    sam_token = sam.stdout.strip().splitlines()[-1]
    (item_id,) = raise_items(opstore, [request("tx-1")]).created
    raise_items(opstore, [request("t-1", "support_escalation")])

    listed = run(opstore, "review", "list", "--role", "analyst")
    assert item_id in listed.stdout and "t-1" not in listed.stdout
    assert "amount_eur: 120.0" in run(opstore, "review", "show", item_id).stdout

    unsigned = run(opstore, "review", "approve", item_id, check=False)
    assert unsigned.returncode != 0 and "no valid reviewer token" in unsigned.stderr
    refused = run(opstore, "review", "approve", item_id, token=sam_token, check=False)
    assert refused.returncode != 0 and "refused: sam (support_agent) may not approve" in refused.stderr

    approved = run(opstore, "review", "approve", item_id, "--comment", "card testing", token=token)
    assert f"enqueued action {item_id}:block_card" in approved.stdout
    assert get_item(opstore, item_id).decision == "approve"

    story = run(opstore, "case", "story", "tx-1").stdout
    assert "[automatic] fraud workflow: decided block_pending_approval" in story
    assert "[review] sam (support_agent): approve on fraud_block_pending_approval REFUSED" in story
    assert "why: card testing" in story and "block_card enqueued" in story
    missing = run(opstore, "case", "story", "tx-nope", check=False)
    assert missing.returncode != 0 and "nothing is recorded about case 'tx-nope'" in missing.stderr
    assert "0 overdue item(s) handled" in run(opstore, "review", "timeouts").stdout
