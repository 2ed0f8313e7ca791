from functools import cache

import numpy as np
import pandas as pd
import pytest
from maintenance_helpers import TRAIN_UNTIL, policy, small_plant

from orchestration_pipelines.maintenance.anomaly import (
    NotEnoughHealthyHistory,
    degrading_windows,
    evaluate_scores,
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
