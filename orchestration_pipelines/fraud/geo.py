"""Country centroids: enough geography to tell a plausible journey from an impossible one."""

from __future__ import annotations

import numpy as np
import pandas as pd

# ISO code -> (latitude, longitude, billing currency of accounts domiciled there)
COUNTRIES: dict[str, tuple[float, float, str]] = {
    "DE": (51.2, 10.4, "EUR"),
    "FR": (46.6, 2.2, "EUR"),
    "NL": (52.1, 5.3, "EUR"),
    "ES": (40.4, -3.7, "EUR"),
    "IT": (42.8, 12.8, "EUR"),
    "GB": (54.0, -2.0, "GBP"),
    "CH": (46.8, 8.2, "CHF"),
    "PL": (52.0, 19.1, "PLN"),
    "SE": (62.0, 15.0, "SEK"),
    "US": (39.8, -98.6, "USD"),
    "JP": (36.2, 138.3, "JPY"),
    "BR": (-10.3, -53.2, "USD"),
    "NG": (9.1, 8.7, "USD"),
    "TH": (15.9, 100.9, "USD"),
    "ID": (-2.5, 118.0, "USD"),
}


def distance_km(country_a: np.ndarray, country_b: np.ndarray) -> np.ndarray:
    """Great-circle distance between country centroids; NaN where a country is unknown."""
    lat = {c: v[0] for c, v in COUNTRIES.items()}
    lon = {c: v[1] for c, v in COUNTRIES.items()}

    def coords(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inverse, uniques = pd.factorize(codes, use_na_sentinel=False)
        lats = np.array([lat.get(u, np.nan) for u in uniques])[inverse]
        lons = np.array([lon.get(u, np.nan) for u in uniques])[inverse]
        return np.radians(lats), np.radians(lons)

    lat_a, lon_a = coords(country_a)
    lat_b, lon_b = coords(country_b)
    h = np.sin((lat_b - lat_a) / 2) ** 2 + np.cos(lat_a) * np.cos(lat_b) * np.sin((lon_b - lon_a) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
