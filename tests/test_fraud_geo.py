"""Country locations from maintained libraries: every ISO 3166 code has one, so travel speed is real."""

import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.generator import unlabelled
from orchestration_pipelines.fraud.geo import country_codes, distance_km, located_countries


def test_travel_distance_is_known_for_every_iso_country():
    codes = np.array(sorted(country_codes()), dtype=object)
    assert len(codes) > 240 and located_countries() == country_codes()
    assert np.isfinite(distance_km(codes, np.roll(codes, 1))).all()
    assert 9_000 < distance_km(np.array(["FR"]), np.array(["JP"]))[0] < 10_500
    assert np.isnan(distance_km(np.array(["XX"]), np.array(["FR"]))[0])


def test_travel_speed_between_countries_outside_the_old_table_is_not_zero(small_world):
    two = unlabelled(small_world.batches[0]).head(2).copy()
    two["account_id"] = two["card_id"] = "A1"
    two["timestamp"] = pd.to_datetime(["2026-11-01T10:00Z", "2026-11-01T12:00Z"])
    two["country"] = ["AR", "KE"]  # Buenos Aires to Nairobi in two hours
    assert compute_features(two)["travel_speed_kmh"].iloc[1] > 4000
