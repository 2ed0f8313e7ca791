"""The bring-your-own trainer on ordinary tables: types, time columns, labels, noise and model choice."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from orchestration_pipelines import fraud
from orchestration_pipelines.fraud.model import (
    bootstrap_intervals,
    evaluate,
    paired_difference_intervals,
    promotion_verdict,
)
from orchestration_pipelines.fraud.table import parse_time_column, read_feature_table
from orchestration_pipelines.model_registry import ModelRegistry

START = pd.Timestamp("2026-01-01", tz="UTC")


def bank_table(n: int = 30_000, seed: int = 3, fraud_rate: float = 0.005) -> pd.DataFrame:
    """A bank's own features, one row a minute from ``START``, fraud signal in two columns."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < fraud_rate).astype(int)
    return pd.DataFrame(
        {
            "event_time": START + pd.to_timedelta(np.arange(n), unit="min"),
            "velocity_score": rng.normal(0, 1, n) + 2.5 * label,
            "merchant_risk": rng.normal(0, 1, n) + 1.5 * label,
            "txn_count_7d": rng.poisson(4, n),
            "chargeback": label,
        }
    )


def test_csv_and_parquet_are_read_with_numeric_columns_inferred(tmp_path):
    table = bank_table(200)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.PARQUET")
    for name in ("t.csv", "t.PARQUET"):
        read = read_feature_table(tmp_path / name)
        assert pd.api.types.is_float_dtype(read["velocity_score"])
        assert pd.api.types.is_integer_dtype(read["txn_count_7d"])
        assert pd.api.types.is_integer_dtype(read["chargeback"])
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        read_feature_table(tmp_path / "t.xlsx")


@pytest.mark.parametrize(
    ("raw", "interpretation"),
    [
        (START + pd.to_timedelta(np.arange(5), unit="h"), "datetimes"),
        ((START + pd.to_timedelta(np.arange(5), unit="h")).tz_localize(None), "without a time zone"),
        ([(START + pd.Timedelta(hours=h)).isoformat() for h in range(5)], "ISO 8601"),
        ([f"2026-01-01T0{h}:00:00+02:00" for h in range(5)], "ISO 8601"),
        (START.timestamp() + 3600 * np.arange(5), "epoch seconds"),
        ((START.timestamp() + 3600 * np.arange(5)).astype("int64") * 1000, "epoch milliseconds"),
        ([str(int(START.timestamp()) + 3600 * h) for h in range(5)], "epoch seconds"),  # numbers as text
        (3600.0 * np.arange(5), "seconds since"),
    ],
)
def test_time_columns_are_interpreted_robustly(raw, interpretation):
    parsed = parse_time_column(pd.Series(raw, name="t"))
    assert interpretation in parsed.interpretation
    assert parsed.unusable == 0
    hours = (parsed.values - parsed.values.iloc[0]).dt.total_seconds().to_numpy() / 3600
    assert np.allclose(hours, np.arange(5)), hours
    if "since" not in interpretation and "+02:00" not in str(raw[0]):
        assert parsed.values.iloc[0] == START


def test_rows_without_a_usable_time_are_reported_with_examples():
    raw = pd.Series(["2026-01-01T00:00:00Z", None, "yesterday", "2026-01-01T02:00:00Z", ""], name="t")
    parsed = parse_time_column(raw)
    assert parsed.unusable == 3
    assert [e["row"] for e in parsed.examples] == [1, 2, 4]
    assert "yesterday" in str(parsed.examples)
    epoch_ms = pd.Series([1.767e12, np.nan, 1.767e12 + 60_000, 1_767_225_600.0, np.inf])
    parsed = parse_time_column(epoch_ms)
    assert "milliseconds" in parsed.interpretation
    assert parsed.unusable == 3  # missing, infinite, and a seconds value among milliseconds
    with pytest.raises(ValueError, match="no usable time"):
        parse_time_column(pd.Series(["soon", "later"], name="t"))


def test_numeric_time_column_trains_and_unusable_rows_are_counted_not_hidden(tmp_path):
    table = bank_table()
    table["event_time"] = table["event_time"].astype("int64") // 10**6  # epoch milliseconds
    table["event_time"] = table["event_time"].astype("float64")
    table.loc[[10, 20, 30], "event_time"] = np.nan
    _, result = fraud.train_on_table(
        table, "chargeback", time_column="event_time", registry=ModelRegistry(tmp_path)
    )
    assert result.split == "time"
    assert "epoch milliseconds" in result.time["interpretation"]
    assert result.time["rows_without_time"] == 3
    assert [e["row"] for e in result.time["examples"]] == [10, 20, 30]
    assert result.metrics["n_rows"] + result.metrics["n_train"] == len(table) - 3
    assert (
        "merchant_risk" in result.model.feature_columns and "event_time" not in result.model.feature_columns
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(chargeback=1), "only one class"),
        (lambda t: t.assign(chargeback=0), "only one class"),
        (lambda t: t.assign(chargeback=np.where(t["chargeback"] == 1, "yes", "no")), "0 and 1"),
        (lambda t: t.assign(chargeback=t["chargeback"] * 2), "0 and 1"),
        (
            lambda t: t.astype({"chargeback": "float64"}).assign(
                chargeback=lambda f: f["chargeback"].where(f.index != 5)
            ),
            "empty",
        ),
    ],
)
def test_labels_that_cannot_train_a_model_are_refused(tmp_path, change, message):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match=message):
        fraud.train_on_table(
            change(bank_table(3000)), "chargeback", time_column="event_time", registry=registry
        )
    assert registry.versions("fraud") == []  # nothing saved


def test_label_or_time_among_the_features_is_refused(tmp_path):
    registry = ModelRegistry(tmp_path)
    table = bank_table(3000)
    with pytest.raises(ValueError, match="label column 'chargeback' is among the features"):
        fraud.train_on_table(
            table, "chargeback", feature_columns=["merchant_risk", "chargeback"], registry=registry
        )
    with pytest.raises(ValueError, match="time column 'event_time' is among the features"):
        fraud.train_on_table(
            table, "chargeback", time_column="event_time", feature_columns=["event_time"], registry=registry
        )
    with pytest.raises(ValueError, match="not in the table"):
        fraud.train_on_table(table, "chargeback", feature_columns=["velocity"], registry=registry)


def test_a_boolean_label_and_gaps_in_features_train(tmp_path):
    table = bank_table().assign(chargeback=lambda t: t["chargeback"].astype(bool))
    table.loc[::7, "merchant_risk"] = np.nan  # ordinary tables have gaps
    _, result = fraud.train_on_table(
        table, "chargeback", time_column="event_time", registry=ModelRegistry(tmp_path)
    )
    probability, anomaly = result.model.predict(table.head(100))
    assert np.isfinite(probability).all() and np.isfinite(anomaly).all()


def _scored(n_pos: int, n_neg: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return labels, rng.normal(0, 1, n_pos + n_neg) + separation * labels


def test_bootstrap_interval_is_seeded_and_brackets_the_exact_metrics():
    labels, scores = _scored(40, 20_000, 2.0)
    scores[:5] = scores[40:45]  # ties between positives and negatives
    exact = evaluate(scores, labels)
    interval = bootstrap_intervals(labels, scores)
    assert interval == bootstrap_intervals(labels, scores)  # seeded
    assert interval["pr_auc"][0] < exact["pr_auc"] < interval["pr_auc"][1]
    assert (
        interval["recall_at_1pct_fpr"][0] <= exact["recall_at_1pct_fpr"] <= interval["recall_at_1pct_fpr"][1]
    )
    assert interval["pr_auc"][1] - interval["pr_auc"][0] > 0.05  # 40 positives: wide
    many = bootstrap_intervals(*_scored(2000, 20_000, 2.0))
    assert many["pr_auc"][1] - many["pr_auc"][0] < interval["pr_auc"][1] - interval["pr_auc"][0]


def test_bootstrap_replicate_with_unit_weights_is_sklearns_average_precision():
    from orchestration_pipelines.fraud.model import _replicate_metrics

    labels, scores = _scored(30, 5000, 1.5, seed=4)
    scores = np.round(scores, 1)  # many ties
    one = _replicate_metrics(labels, [scores], n_boot=1, seed=0, unit_weights=True)
    assert one[0, 0, 0] == pytest.approx(average_precision_score(labels, scores))
    assert one[0, 1, 0] == pytest.approx(evaluate(scores, labels)["recall_at_1pct_fpr"])


def test_training_reports_confidence_intervals_for_a_holdout_with_few_positives(tmp_path):
    _, result = fraud.train_on_table(
        bank_table(fraud_rate=0.003), "chargeback", time_column="event_time", registry=ModelRegistry(tmp_path)
    )
    low, high = result.metrics["pr_auc_ci"]
    assert low <= result.metrics["pr_auc"] <= high and high - low > 0.01
    low, high = result.metrics["recall_at_1pct_fpr_ci"]
    assert low <= result.metrics["recall_at_1pct_fpr"] <= high


def test_promotion_says_when_the_difference_is_within_noise():
    labels, current = _scored(25, 10_000, 2.0, seed=1)
    candidate = current + np.random.default_rng(2).normal(0, 0.3, len(current))
    difference = paired_difference_intervals(labels, candidate, current)
    assert difference["pr_auc"][0] < 0 < difference["pr_auc"][1]
    baseline = {"version": "v1", "metrics": evaluate(current, labels), "difference_ci": difference}
    passed, why = promotion_verdict(evaluate(candidate, labels), baseline)
    assert "within noise" in why

    strong = current + 3.0 * labels
    clear = paired_difference_intervals(labels, strong, current)
    assert clear["pr_auc"][0] > 0
    passed, why = promotion_verdict(evaluate(strong, labels), {**baseline, "difference_ci": clear})
    assert passed and "within noise" not in why


def test_configuration_is_chosen_on_a_validation_slice_before_the_holdout(tmp_path):
    registry = ModelRegistry(tmp_path)
    version, result = fraud.train_on_table(
        bank_table(), "chargeback", time_column="event_time", registry=registry
    )
    selection = result.selection
    assert len(selection["candidates"]) >= 3
    assert {"learning_rate", "iterations", "class_weight"} <= set(selection["chosen"])
    chosen = selection["chosen"]
    [origin] = [
        c
        for c in selection["candidates"]
        if (c["learning_rate"], c["class_weight"]) == (chosen["learning_rate"], chosen["class_weight"])
    ]
    assert chosen["iterations"] <= origin["max_iterations"]
    assert "validation PR-AUC" in selection["why"]
    validation_end = pd.Timestamp(selection["validation_period"][1])
    holdout_start = pd.Timestamp(result.holdout_period[0])
    assert validation_end < holdout_start  # the hold-out is never used to choose
    assert registry.card("fraud", version)["selection"] == selection
    assert result.model.supervised.n_iter_ == selection["chosen"]["iterations"]


def test_an_unweighted_winner_speaks_the_policys_balanced_probability_scale(tmp_path, monkeypatch):
    from orchestration_pipelines.fraud import model as model_module

    table = bank_table()
    for config in (
        model_module.BoostingConfig(0.1, 60, "balanced"),
        model_module.BoostingConfig(0.1, 60, None),
    ):
        monkeypatch.setattr(model_module, "CANDIDATE_CONFIGS", (config,))
        _, result = fraud.train_on_table(
            table, "chargeback", time_column="event_time", registry=ModelRegistry(tmp_path)
        )
        probability, _ = result.model.predict(result.holdout)
        fraud_cases = result.holdout["chargeback"].to_numpy() == 1
        raw = result.model.supervised.predict_proba(result.holdout[result.model.feature_columns].to_numpy())[
            :, 1
        ]
        assert evaluate(probability, fraud_cases)["pr_auc"] == pytest.approx(
            evaluate(raw, fraud_cases)["pr_auc"]
        )
        # Policy thresholds (auto-clear below 0.5) assume class-balanced probabilities either way.
        assert np.median(probability[fraud_cases]) > 0.5 > np.median(probability[~fraud_cases])
        if config.class_weight is None:
            assert result.model.odds_scale > 50 and np.median(raw[fraud_cases]) < 0.5


def test_bootstrap_in_small_chunks_gives_the_same_kind_of_interval(monkeypatch):
    from orchestration_pipelines.fraud import model as model_module

    labels, scores = _scored(40, 20_000, 2.0)
    whole = bootstrap_intervals(labels, scores)
    monkeypatch.setattr(model_module, "_BOOTSTRAP_CHUNK_VALUES", 1)  # one replicate at a time
    chunked = bootstrap_intervals(labels, scores)
    for metric in ("pr_auc", "recall_at_1pct_fpr"):
        assert np.allclose(whole[metric], chunked[metric], atol=0.03)
    unit = model_module._replicate_metrics(labels, [scores], n_boot=3, unit_weights=True)
    assert np.allclose(unit[0, 0], average_precision_score(labels, scores))
