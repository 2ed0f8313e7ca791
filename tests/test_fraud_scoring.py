"""Scores rejoin their transactions' context before decisions are staged."""

import pandas as pd
import pytest

from orchestration_pipelines.fraud.features import CONTEXT_COLUMNS, FEATURE_TABLE_CONTEXT, compute_features
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features, with_context


@pytest.fixture(scope="module")
def scored(trained_builtin, small_world):
    """(batch, scores from the full-context features, scores from the narrow features-table columns)."""
    policy = load_policy()
    batch = small_world.batches[2].drop(columns=["is_fraud", "fraud_pattern"]).reset_index(drop=True)
    full = compute_features(batch, small_world.history)
    narrow = full[[*FEATURE_TABLE_CONTEXT, *full.columns[len(CONTEXT_COLUMNS) :]]]
    model = trained_builtin.model
    return batch, *(score_features(f, model, "v1", policy) for f in (full, narrow))


def test_narrow_scores_with_context_decide_as_the_full_ones(scored):
    batch, full, narrow = scored
    policy = load_policy()
    joined = with_context(batch, narrow)
    assert list(joined.columns) == list(full.columns)
    at = pd.Timestamp("2026-11-01", tz="UTC")
    pd.testing.assert_frame_equal(make_decisions(joined, policy, at), make_decisions(full, policy, at))


def test_context_is_matched_on_the_transaction_id_in_any_order(scored):
    batch, full, narrow = scored
    shuffled = narrow.sample(frac=1.0, random_state=3).reset_index(drop=True)
    expected = full.set_index("transaction_id").loc[shuffled["transaction_id"]].reset_index()
    pd.testing.assert_frame_equal(with_context(batch.iloc[::-1], shuffled), expected[list(full.columns)])


def test_a_score_without_its_transaction_is_refused(scored):
    batch, _, narrow = scored
    with pytest.raises(ValueError, match="1 scored transactions have no transaction row"):
        with_context(batch.iloc[1:], narrow)
