"""Countries: the ISO 3166 alpha-2 codes the contract accepts and a location for each, so travel speed
is known for every pair of countries.

Codes come from ``pycountry`` (the ISO 3166-1 list), locations from ``countryinfo`` (each country's
geographic centre, or its capital where the centre is not given). Both are read once into arrays that
every lookup indexes, so a million rows cost a factorize and a gather, never a per-row call.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pycountry
from countryinfo import all_countries

# The three ISO codes countryinfo gives no coordinates (uninhabited or scattered territories): an
# approximate position each, so no pair of countries is ever 0 km apart by default. A test checks that
# every ISO code has a location, so a gap appearing in a new library release is caught.
_NOT_IN_COUNTRYINFO = {
    "AQ": (-75.0, 0.0),  # Antarctica
    "BV": (-54.43, 3.38),  # Bouvet Island
    "UM": (19.28, 166.65),  # US Minor Outlying Islands (Wake Island, the largest)
}


@cache
def country_codes() -> frozenset[str]:
    """Every ISO 3166-1 alpha-2 code."""
    return frozenset(country.alpha_2 for country in pycountry.countries)


@cache
def _locations() -> pd.DataFrame:
    """Latitude and longitude in radians, indexed by alpha-2 code; the last row (NaN) is "unknown"."""
    located = {}
    for country in all_countries():
        code = country.iso().get("alpha2")
        latlng = country.latlng() or country.capital_latlng()
        if latlng and isinstance(latlng[0], list):  # several capitals (e.g. BQ): the first
            latlng = latlng[0]
        if code in country_codes() and latlng:
            located[code] = (float(latlng[0]), float(latlng[1]))
    located = {**_NOT_IN_COUNTRYINFO, **located}
    frame = pd.DataFrame.from_dict(located, orient="index", columns=["lat", "lon"], dtype=float)
    return np.radians(frame.sort_index())


def located_countries() -> frozenset[str]:
    return frozenset(_locations().index)


def _coordinates(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    table = _locations()
    inverse, uniques = pd.factorize(codes, use_na_sentinel=False)
    position = table.index.get_indexer(pd.Index(uniques))[inverse]  # -1 (the NaN row) when unknown
    lat = np.append(table["lat"].to_numpy(), np.nan)[position]
    lon = np.append(table["lon"].to_numpy(), np.nan)[position]
    return lat, lon


def distance_km(country_a: np.ndarray, country_b: np.ndarray) -> np.ndarray:
    """Great-circle distance between country locations; NaN where a code is not ISO 3166 alpha-2."""
    lat_a, lon_a = _coordinates(country_a)
    lat_b, lon_b = _coordinates(country_b)
    h = np.sin((lat_b - lat_a) / 2) ** 2 + np.cos(lat_a) * np.cos(lat_b) * np.sin((lon_b - lon_a) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
