from importlib import resources

import numpy as np
import pandas as pd
import pytest

from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.policy import PolicyError, apply_rules, decide, load_policy, reason_strings
from orchestration_pipelines.fraud.scoring import make_decisions, score_features


def test_packaged_policy_is_valid_and_versioned():
    policy = load_policy()
    assert policy.version and len(policy.source_sha256) == 64
    assert 0 < policy.auto_clear_below <= policy.block_at_or_above <= 1
    assert {"CARD_TESTING_BURST", "IMPOSSIBLE_TRAVEL"} <= {r.code for r in policy.rules}


def test_invalid_policies_are_refused(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy_id: p\nversion: 1\n")
    with pytest.raises(PolicyError, match="invalid fraud policy"):
        load_policy(path)
    text = resources.files("orchestration_pipelines").joinpath("policies/fraud.yaml").read_text()
    path.write_text(text.replace("auto_clear_below: 0.5", "auto_clear_below: 0.95"))
    with pytest.raises(PolicyError, match="thresholds"):
        load_policy(path)
    path.write_text(text.replace('">="', '"=>"', 1))
    with pytest.raises(PolicyError, match="unknown operators"):
        load_policy(path)


def test_rules_raise_risk_and_name_themselves():
    policy = load_policy()
    frame = pd.DataFrame(
        {
            "card_tx_count_10m": [8, 1],
            "amount_eur": [2.0, 50.0],
            "travel_speed_kmh": [0.0, 0.0],
            "hours_since_prev": [1.0, 1.0],
            "is_new_device": [0, 0],
            "amount_ratio_to_typical": [0.1, 1.0],
            "account_tx_count_prior": [30, 30],
            "is_new_merchant_category": [0, 0],
            "account_tx_count_1h": [8, 1],
            "amount_zscore": [-1.0, 0.0],
            "is_new_country": [0, 0],
        }
    )
    floor, bits = apply_rules(frame, policy)
    reasons = reason_strings(bits, [r.code for r in policy.rules])
    assert floor[0] == 0.95 and floor[1] == 0
    assert reasons[0] == "CARD_TESTING_BURST;HIGH_VELOCITY" and reasons[1] == ""


def test_decisions_follow_thresholds_and_anomaly_floor():
    policy = load_policy()
    risk = np.array([0.1, 0.6, 0.95, 0.1])
    anomaly = np.array([0.5, 0.5, 0.5, 0.99999])
    assert list(decide(risk, anomaly, policy)) == [
        "auto_clear",
        "analyst_review",
        "block_pending_approval",
        "analyst_review",
    ]


def test_scored_cases_carry_model_policy_and_reasons(trained_builtin, small_world):
    policy = load_policy()
    batch = small_world.batches[1]
    features = compute_features(batch.drop(columns=["is_fraud", "fraud_pattern"]), small_world.history)
    decisions = make_decisions(score_features(features, trained_builtin.model, "v-test", policy), policy)
    assert (decisions["policy_version"] == policy.version).all() and (
        decisions["model_version"] == "v-test"
    ).all()
    flagged = decisions[decisions["decision"] != "auto_clear"]
    assert len(flagged) and (flagged["reason_codes"] != "").all()  # every escalation says why
    caught = decisions.loc[batch["is_fraud"].to_numpy() == 1, "decision"]
    assert (caught != "auto_clear").mean() > 0.8
    assert (decisions["decision"] == "block_pending_approval").mean() < policy.max_block_share
