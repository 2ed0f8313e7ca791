import numpy as np
import pandas as pd
import pytest

from orchestration_pipelines import fraud
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.model import evaluate, promotion_verdict, train_fraud_model
from orchestration_pipelines.model_registry import InvalidModelVersion, ModelNotFound, ModelRegistry


def test_builtin_model_beats_chance_by_far_on_a_later_holdout(trained_builtin, small_world):
    metrics = trained_builtin.metrics
    assert trained_builtin.split == "time"
    assert metrics["base_rate"] < 0.01
    assert metrics["pr_auc"] > 0.6  # chance level is the base rate, under 0.01
    assert metrics["recall_at_1pct_fpr"] > 0.7
    assert metrics["n_rows"] + metrics["n_train"] == len(small_world.history)


def test_model_generalises_to_a_new_day(trained_builtin, small_world):
    batch = small_world.batches[0]
    features = compute_features(batch.drop(columns=["is_fraud", "fraud_pattern"]), small_world.history)
    probability, anomaly = trained_builtin.model.predict(features)
    metrics = evaluate(probability, batch["is_fraud"].to_numpy())
    assert metrics["pr_auc"] > 0.5
    assert ((anomaly >= 0) & (anomaly <= 1)).all()
    assert anomaly[batch["is_fraud"].to_numpy() == 1].mean() > anomaly.mean()


def test_recall_at_one_percent_fpr_is_measured_not_guessed():
    labels = np.array([0] * 200 + [1] * 4)
    scores = np.r_[np.linspace(0, 0.5, 200), [0.9, 0.8, 0.2, 0.1]]
    metrics = evaluate(scores, labels)
    # only two positives score above every negative that keeps FPR <= 1%
    assert metrics["recall_at_1pct_fpr"] == 0.5


def test_too_few_positives_is_a_clear_error(small_world):
    history = small_world.history.copy()
    features = compute_features(history)
    features["is_fraud"] = 0
    features.iloc[:3, features.columns.get_loc("is_fraud")] = 1
    with pytest.raises(ValueError, match="fraud cases"):
        train_fraud_model(features, ["amount_eur_log"], time_column="timestamp")


def test_promotion_refuses_a_worse_candidate():
    good = {"pr_auc": 0.8, "recall_at_1pct_fpr": 0.7}
    assert promotion_verdict(good, None)[0]
    close = {"version": "v1", "metrics": {"pr_auc": 0.805, "recall_at_1pct_fpr": 0.71}}
    assert promotion_verdict(good, close)[0]  # within tolerance
    passed, why = promotion_verdict(
        {"pr_auc": 0.6, "recall_at_1pct_fpr": 0.7}, {"version": "v1", "metrics": good}
    )
    assert not passed and "pr_auc" in why
    passed, why = promotion_verdict(good, {"version": "v1", "not_comparable": "trained on other features"})
    assert not passed and "trained on other features" in why


def test_registry_versions_are_immutable_and_promotion_is_explicit(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ModelNotFound, match="train one first"):
        registry.load("fraud")
    v1 = registry.save("fraud", {"weights": [1]}, {"metrics": {"pr_auc": 0.5}})
    assert registry.current_version("fraud") is None
    registry.promote("fraud", v1)
    v2 = registry.save("fraud", {"weights": [2]}, {})
    assert registry.load("fraud")[0] == {"weights": [1]}
    assert registry.load("fraud", v2)[0] == {"weights": [2]}
    assert registry.versions("fraud") == sorted([v1, v2])
    assert not list(tmp_path.joinpath("fraud").glob(".incoming-*"))
    with pytest.raises(InvalidModelVersion):
        registry.promote("fraud", "nope")
    with pytest.raises(ModelNotFound):
        registry.promote("fraud", "20260101T000000-0badc0de")  # well formed, never saved


def _bank_table(n: int = 40_000, seed: int = 3) -> pd.DataFrame:
    """A bank's own engineered features: 0.4% fraud, signal spread over two columns plus noise."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.004).astype(int)
    return pd.DataFrame(
        {
            "event_time": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
            "velocity_score": rng.normal(0, 1, n) + 2.5 * label,
            "merchant_risk": rng.normal(0, 1, n) + 1.5 * label,
            "noise": rng.normal(0, 1, n),
            "customer_segment": rng.choice(["a", "b"], n),  # not numeric: ignored
            "chargeback": label,
        }
    )


def test_bring_your_own_table_trains_evaluates_and_scores(tmp_path):
    registry = ModelRegistry(tmp_path)
    table = _bank_table()
    version, result = fraud.train_on_table(table, "chargeback", time_column="event_time", registry=registry)
    card = registry.card("fraud", version)
    assert card["feature_set"] == "custom"
    assert card["feature_columns"] == ["velocity_score", "merchant_risk", "noise"]
    assert result.split == "time" and result.metrics["pr_auc"] > 0.3
    # 43 hold-out fraud cases: one case is 2.3 points of recall, so the bound leaves room for noise
    # (chance would be 0.01); the bootstrap interval must still reach 0.7.
    assert 0.6 < result.metrics["recall_at_1pct_fpr"] <= 1
    assert result.metrics["recall_at_1pct_fpr_ci"][1] > 0.7
    registry.promote("fraud", version)
    decisions = fraud.score(table.tail(500).drop(columns=["chargeback"]), registry=registry)
    assert len(decisions) == 500
    assert set(decisions["decision"]) <= {"auto_clear", "analyst_review", "block_pending_approval"}
    assert (decisions["model_version"] == version).all()
    assert "customer_segment" in decisions.columns  # passed through


def test_bring_your_own_table_without_time_uses_a_stratified_split(tmp_path):
    _, result = fraud.train_on_table(
        _bank_table().drop(columns=["event_time"]), "chargeback", registry=ModelRegistry(tmp_path)
    )
    assert result.split == "random" and result.metrics["n_positive"] >= 5


def test_bring_your_own_table_rejects_bad_labels(tmp_path):
    table = _bank_table()
    table.loc[0, "chargeback"] = 7
    with pytest.raises(ValueError, match="only 0 and 1"):
        fraud.train_on_table(table, "chargeback", registry=ModelRegistry(tmp_path))
    with pytest.raises(ValueError, match=r"columns \['fraud'\] are not in the table"):
        fraud.train_on_table(table, "fraud", registry=ModelRegistry(tmp_path))
