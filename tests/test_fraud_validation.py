import pandas as pd
import pytest

from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features
from orchestration_pipelines.fraud.validation import CHECK_NAMES, validate_staged_decisions


@pytest.fixture(scope="module")
def staged(trained_builtin, small_world):
    policy = load_policy()
    batch = small_world.batches[2].drop(columns=["is_fraud", "fraud_pattern"])
    decided = make_decisions(
        score_features(compute_features(batch, small_world.history), trained_builtin.model, "v1", policy),
        policy,
    )
    decided.insert(0, "batch_id", "b.csv")
    decided.insert(1, "run_id", "run-1")
    return decided  # the features' context columns already carry card_id and device_id


def _failed(df) -> set[str]:
    return {
        name for name, outcome in validate_staged_decisions(df, load_policy()).items() if not outcome.passed
    }


def test_good_batch_passes_every_check(staged):
    outcomes = validate_staged_decisions(staged, load_policy())
    assert set(outcomes) == set(CHECK_NAMES)
    assert all(o.passed for o in outcomes.values()), {n: o.description for n, o in outcomes.items()}
    assert outcomes["decision_mix_within_policy"].metadata["share_auto_clear"] > 0.9


def test_each_defect_fails_its_own_check(staged):
    duplicated = staged.copy()
    duplicated.loc[1, "transaction_id"] = duplicated.loc[0, "transaction_id"]
    assert _failed(duplicated) == {"unique_transaction_ids"}

    nulls = staged.copy()
    nulls.loc[3, "account_id"] = None
    assert _failed(nulls) == {"no_missing_values"}

    out_of_range = staged.assign(risk_score=staged["risk_score"] + 1.5)
    assert _failed(out_of_range) == {"scores_in_range"}

    everything_blocked = staged.assign(decision="block_pending_approval")
    assert _failed(everything_blocked) == {"decision_mix_within_policy"}


def test_wrong_schema_fails_everything_and_says_why(staged):
    outcomes = validate_staged_decisions(staged.drop(columns=["risk_score"]), load_policy())
    assert not any(o.passed for o in outcomes.values())
    assert "risk_score" in outcomes["schema_matches"].description
    wrong_type = staged.assign(amount=staged["amount"].astype(str))
    assert "amount" in validate_staged_decisions(wrong_type, load_policy())["schema_matches"].description


def test_ids_another_batch_published_fail_the_unique_check(staged):
    """Two batches sharing ids that raced past intake together: the second one's check refuses."""
    elsewhere = pd.DataFrame({"transaction_id": staged["transaction_id"].head(3), "batch_id": "a.csv"})
    outcomes = validate_staged_decisions(staged, load_policy(), elsewhere)
    unique = outcomes["unique_transaction_ids"]
    assert not unique.passed and "already published by ['a.csv']" in unique.description
    assert unique.metadata["published_elsewhere"] == 3
    assert all(o.passed for n, o in outcomes.items() if n != "unique_transaction_ids")
