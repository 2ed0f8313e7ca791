"""The review policy file: the packaged one loads, every malformed one fails with the place named."""

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orchestration_pipelines.review.policy import REVIEW_POLICY_PATH, PolicyError, load_review_policy


def test_the_packaged_policy_covers_every_kind_with_roles_deadlines_timeouts_and_effects():
    policy = load_review_policy()
    assert set(policy.roles) == {
        "analyst", "senior_analyst", "support_agent", "support_lead", "maintenance_planner", "admin"
    }  # fmt: skip
    block = policy.kind("fraud_block_pending_approval")
    assert block.queue == "analyst" and block.deadline == timedelta(hours=1)
    assert block.actions == {"approve": ("block_card",), "reject": ("release_card",), "correct": ()}
    (rule,) = block.four_eyes
    assert (rule.approvers, rule.including_role) == (2, "senior_analyst")
    assert rule.applies({"amount_eur": 5000.01}) and not rule.applies({"amount_eur": 5000})
    assert block.on_timeout.escalate_to == "senior_analyst"
    assert block.allowed({"analyst"}, "approve") and not block.allowed({"support_agent"}, "approve")
    assert block.allowed_actions({"admin"}) == {"assign", "comment"}
    assert policy.kind("support_high_risk_reply").on_timeout.apply == "reject"
    assert policy.kind("maintenance_low_confidence_alert").actions["approve"] == ("open_work_order",)
    assert policy.kind("support_escalation").label_values is None  # any intent name
    with pytest.raises(PolicyError, match="no item kind 'nope'"):
        policy.kind("nope")


def test_the_version_is_a_hash_of_the_file(tmp_path: Path):
    copy = tmp_path / "review.yaml"
    copy.write_bytes(REVIEW_POLICY_PATH.read_bytes())
    same = load_review_policy(copy).version
    assert same == load_review_policy().version and same.startswith("human-review@")
    copy.write_text(copy.read_text() + "\n# a comment is an edit too\n")
    assert load_review_policy(copy).version != same


def _broken(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(REVIEW_POLICY_PATH.read_text())
    edit(raw)
    path = tmp_path / "review.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["kinds"]["support_escalation"]["decisions"].update(intern=["approve"]),
         r"kinds.support_escalation.decisions: unknown role 'intern'"),
        (lambda p: p["kinds"]["support_escalation"]["decisions"].update(support_agent=["shred"]),
         r"decisions.support_agent: unknown decision\(s\) \['shred'\]"),
        (lambda p: p["kinds"]["fraud_analyst_review"].update(deadline="soon"),
         r"fraud_analyst_review.deadline: 'soon' is not a duration"),
        (lambda p: p["kinds"]["fraud_analyst_review"]["on_timeout"].update(apply="approve"),
         r"on_timeout: give exactly one of escalate_to or apply"),
        (lambda p: p["kinds"]["support_high_risk_reply"]["on_timeout"].update(apply="shrug"),
         r"on_timeout.apply: 'shrug' is not one of"),
        (lambda p: p["kinds"]["fraud_block_pending_approval"]["four_eyes"][0].update(approvers=1),
         r"four_eyes\[0\]: four eyes means at least 2 approvers"),
        (lambda p: p["kinds"]["fraud_block_pending_approval"]["four_eyes"][0].update(including_role="cfo"),
         r"four_eyes\[0\]: unknown role 'cfo'"),
        (lambda p: p["kinds"]["fraud_block_pending_approval"].update(on_timeout={"apply": "approve"}),
         r"on_timeout.apply: 'approve' needs four eyes here; a deadline cannot grant it"),
        (lambda p: p["kinds"]["maintenance_low_confidence_alert"].pop("correct"),
         r"maintenance_low_confidence_alert.correct: a kind that can be corrected needs a label_field"),
        (lambda p: p["kinds"]["maintenance_low_confidence_alert"]["actions"].update(approve=["Open Order"]),
         r"actions.approve: action names are lower_snake_case"),
        (lambda p: p["kinds"]["support_escalation"].pop("queue"),
         r"kinds.support_escalation: missing 'queue'"),
        (lambda p: p.update(kinds={}), r"'kinds' must map item kinds"),
    ],
)  # fmt: skip
def test_a_malformed_policy_names_the_place(tmp_path, edit, message):
    with pytest.raises(PolicyError, match=message):
        load_review_policy(_broken(tmp_path, edit))


def test_invalid_yaml_is_a_policy_error(tmp_path):
    path = tmp_path / "review.yaml"
    path.write_text("roles: [analyst\nkinds: {")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_review_policy(path)
