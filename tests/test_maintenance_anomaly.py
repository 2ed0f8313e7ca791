from functools import cache

import numpy as np
import pandas as pd
import pytest
from maintenance_helpers import TRAIN_UNTIL, policy, small_plant

from orchestration_pipelines.maintenance.anomaly import (
    NotEnoughHealthyHistory,
    current_model_baseline,
    degrading_windows,
    evaluate_scores,
    promotion_verdict,
    score_features,
    train_models,
)
from orchestration_pipelines.maintenance.replay import history_features


@cache
def _features() -> pd.DataFrame:
    sim = small_plant()
    return history_features(sim.readings, sim.events, sim.plant, policy())


def test_models_learn_healthy_history_per_type_and_score_degradations_high():
    sim = small_plant()
    features = _features()
    degrading = degrading_windows(features, sim.failures, policy().window)
    training = features["window_start"] < TRAIN_UNTIL
    models = train_models(features, sim.plant, policy(), training & ~degrading)
    assert set(models) == {"pump", "compressor", "spindle"}
    assert "pressure_rolling" not in models["spindle"].columns

    scored = score_features(features, models)
    unusable = features["dropout"] | features["in_maintenance"]
    assert scored.loc[unusable, "anomaly_score"].isna().all()
    assert scored.loc[~unusable, "anomaly_score"].notna().all()
    healthy_training = scored[training & ~degrading & ~unusable]["anomaly_score"]
    assert healthy_training.quantile(policy().healthy_quantile) == pytest.approx(1.0, abs=0.05)

    report = evaluate_scores(scored[~training], degrading[~training])
    assert (report["roc_auc"].dropna() > 0.8).all()
    assert report["roc_auc"].notna().sum() >= 2
    # The evidence names the sensor that moved.
    late = scored[degrading & scored["anomaly_score"].gt(3)].merge(sim.failures, on="machine_id")
    expected = {"bearing_wear": "vibration", "overheating": "temperature", "pressure_loss": "pressure"}
    hits = (late["top_sensor"] == late["mode"].map(expected)).mean()
    assert hits > 0.6


def test_a_machine_type_without_enough_healthy_history_is_refused():
    sim = small_plant()
    features = _features()
    first_hour = features["window_start"] < pd.Timestamp("2026-11-02T01:00Z")
    with pytest.raises(NotEnoughHealthyHistory, match="healthy windows"):
        train_models(features, sim.plant, policy(), first_hour)


def test_an_unknown_machine_of_a_known_type_is_scored_against_its_type():
    sim = small_plant()
    features = _features()
    training = features["window_start"] < TRAIN_UNTIL
    models = train_models(features, sim.plant, policy(), training)
    stranger = features[features["machine_id"] == "PU-001"].head(50).assign(machine_id="PU-NEW")
    scores = score_features(stranger, models)["anomaly_score"].dropna()
    assert len(scores) > 30 and np.isfinite(scores).all()


def _evaluation(**metrics) -> list[dict]:
    base = {"machine_type": "pump", "roc_auc": 0.9, "degrading_above_1": 0.8, "healthy_above_1": 0.01}
    return [{**base, **metrics}]


def test_promotion_refuses_a_candidate_worse_on_any_measure_and_says_why():
    current = {"version": "v1", "evaluation": _evaluation()}
    assert promotion_verdict(_evaluation(), None)[0]  # the first model
    ok, why = promotion_verdict(_evaluation(roc_auc=0.895, healthy_above_1=0.015), current)
    assert ok and "pump roc_auc 0.8950 vs current 0.9000" in why  # within tolerance
    for worse, named in [({"roc_auc": 0.85}, "roc_auc"), ({"degrading_above_1": 0.7}, "degrading_above_1"),
                         ({"healthy_above_1": 0.05}, "healthy_above_1")]:  # fmt: skip
        ok, why = promotion_verdict(_evaluation(**worse), current)
        assert not ok and why.startswith("candidate is worse") and named in why
    ok, why = promotion_verdict(_evaluation(roc_auc=np.nan, degrading_above_1=np.nan), current)
    assert ok and "roc_auc" not in why  # not measurable without degrading windows: not held against it
    ok, why = promotion_verdict(_evaluation(), {"version": "v1", "not_comparable": "other sensors"})
    assert not ok and "no like-for-like comparison: other sensors" in why


def test_the_current_model_is_judged_on_the_candidates_holdout_only_when_like_for_like():
    sim, p = small_plant(), policy()
    features = _features()
    degrading = degrading_windows(features, sim.failures, p.window)
    holdout = features["window_start"] >= TRAIN_UNTIL
    candidate = train_models(features, sim.plant, p, ~holdout & ~degrading)
    card = {"version": "v1", "trained_through": str(features.loc[~holdout, "window_start"].max())}
    same = current_model_baseline(candidate, card, candidate, features[holdout], degrading[holdout])
    assert same["version"] == "v1" and promotion_verdict(same["evaluation"], same)[0]
    everything = pd.Series(True, index=features.index)
    worse = train_models(features, sim.plant, p, everything)  # degradations learnt as normal
    baseline = current_model_baseline(candidate, card, worse, features[holdout], degrading[holdout])
    assert not promotion_verdict(evaluate_scores(score_features(features[holdout], worse), degrading[holdout])
                                 .to_dict("records"), baseline)[0]  # fmt: skip
    seen = {**card, "trained_through": str(features["window_start"].max())}
    assert (
        "inside the candidate's hold-out"
        in current_model_baseline(candidate, seen, candidate, features[holdout], degrading[holdout])[
            "not_comparable"
        ]
    )
    fewer = {t: m for t, m in candidate.items() if t != "spindle"}
    assert (
        "reads"
        in current_model_baseline(fewer, card, candidate, features[holdout], degrading[holdout])[
            "not_comparable"
        ]
    )
