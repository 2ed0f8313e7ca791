"""Per-transaction risk features, computed vectorised over accounts' time-ordered history.

Every feature looks only backwards in time: a transaction is compared with what its account (or
card) did before it, in the batch itself and in the history passed alongside. That makes the same
function serve training (history is the training table itself) and scoring (history is a look-back
window of earlier transactions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.contract import amount_in_eur
from orchestration_pipelines.fraud.geo import distance_km

FEATURE_COLUMNS = [
    "amount_eur_log",
    "amount_ratio_to_typical",
    "amount_zscore",
    "account_tx_count_prior",
    "account_tx_count_1h",
    "account_tx_count_24h",
    "card_tx_count_10m",
    "is_new_device",
    "is_new_merchant_category",
    "is_new_country",
    "hours_since_prev",
    "travel_speed_kmh",
    "hour_of_day",
    "is_ecommerce",
]
# Columns carried from the transaction into every downstream table, so a case reads on its own.
CONTEXT_COLUMNS = [
    "transaction_id",
    "account_id",
    "timestamp",
    "amount",
    "currency",
    "amount_eur",
    "merchant_category",
    "country",
    "channel",
]
# What the features read: the context (less the derived amount_eur) plus the card and device.
_USED_COLUMNS = [*(c for c in CONTEXT_COLUMNS if c != "amount_eur"), "card_id", "device_id"]
_NO_PREVIOUS_HOURS = 24.0 * 30  # stands in for "no earlier transaction" so models need no NaN handling


def _window_counts(group_keys: np.ndarray, seconds: np.ndarray, window_s: int) -> np.ndarray:
    """Rows of the same group within ``window_s`` seconds before each row (itself included).

    Expects rows sorted by (group, time). Packing group and time into one sorted int64 key turns the
    per-group rolling count into a single binary search.
    """
    key = group_keys.astype("int64") * (1 << 34) + seconds
    return np.arange(len(key)) - np.searchsorted(key, key - window_s, side="left") + 1


def _first_seen(group_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1 where this group meets this value for the first time (rows sorted by time within group)."""
    value_codes = pd.factorize(values)[0].astype("int64")
    pair = group_keys.astype("int64") * (int(value_codes.max(initial=0)) + 1) + value_codes
    return (~pd.Series(pair).duplicated().to_numpy()).astype("int8")


def _utc_nanoseconds(df: pd.DataFrame) -> pd.DataFrame:
    """One timestamp type for every source: the warehouse returns microseconds in its own UTC zone
    object, files give nanoseconds, and concatenating the two would fall back to slow Python objects."""
    return df.assign(timestamp=df["timestamp"].dt.tz_convert("UTC").dt.as_unit("ns"))


def compute_features(transactions: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Context columns plus ``FEATURE_COLUMNS`` for each row of ``transactions``, in its order.

    ``history`` (same contract, any overlap in accounts) only informs the features; its rows are not
    returned.
    """
    # Only the columns read below are stacked, and only the batch's rows are assembled into the
    # result: history can be several times the batch.
    parts = [_utc_nanoseconds(transactions[_USED_COLUMNS])]
    if history is not None and len(history):
        known = ~history["transaction_id"].isin(transactions["transaction_id"])
        parts.insert(0, _utc_nanoseconds(history.loc[known, history.columns.intersection(_USED_COLUMNS)]))
    n_known = len(parts[0]) if len(parts) > 1 else 0
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)

    account = pd.factorize(frame["account_id"])[0]
    card = pd.factorize(frame["card_id"])[0]
    nanos = pd.DatetimeIndex(frame["timestamp"]).asi8
    seconds = (nanos - nanos.min()) // 1_000_000_000
    order = np.lexsort((seconds, account))
    acc, sec = account[order], seconds[order]
    amount_eur = amount_in_eur(frame)[order]
    log_amount = np.log1p(amount_eur)

    # Expanding account statistics over earlier transactions only.
    position = np.arange(len(frame))
    group_start = np.r_[0, np.flatnonzero(np.diff(acc)) + 1]
    start = np.repeat(group_start, np.diff(np.r_[group_start, len(frame)]))
    prior = position - start
    csum = np.r_[0.0, np.cumsum(amount_eur)]
    csum_log = np.r_[0.0, np.cumsum(log_amount)]
    csum_log2 = np.r_[0.0, np.cumsum(log_amount**2)]
    with np.errstate(divide="ignore", invalid="ignore"):
        typical = (csum[position] - csum[start]) / prior
        mean_log = (csum_log[position] - csum_log[start]) / prior
        var_log = (csum_log2[position] - csum_log2[start]) / prior - mean_log**2
    has_prior = prior > 0
    ratio = np.where(has_prior, amount_eur / np.where(has_prior, typical, 1.0), 1.0)
    zscore = np.where(
        has_prior,
        (log_amount - np.nan_to_num(mean_log)) / np.sqrt(np.maximum(np.nan_to_num(var_log), 0.0) + 0.25**2),
        0.0,
    )

    card_order = np.lexsort((sec, card[order]))
    card_counts = np.empty(len(frame), dtype="int64")
    card_counts[card_order] = _window_counts(card[order][card_order], sec[card_order], 600)

    previous = np.r_[0, position[:-1]]
    hours_since = np.where(has_prior, (sec - sec[previous]) / 3600.0, _NO_PREVIOUS_HOURS)
    country = frame["country"].to_numpy()[order]
    km = np.where(has_prior, distance_km(country, country[previous]), 0.0)
    km = np.nan_to_num(km, nan=0.0)
    speed = km / np.maximum(hours_since, 1.0 / 60.0)

    restore = np.empty(len(order), dtype="int64")
    restore[order] = np.arange(len(order))
    target = restore[n_known:]  # where the batch's rows sit in (account, time) order, in input order

    def batch_values(column: str) -> np.ndarray:
        return frame[column].to_numpy()[n_known:]

    def first_seen(column: str) -> np.ndarray:
        return _first_seen(acc, frame[column].to_numpy()[order])[target]

    return pd.DataFrame(
        {
            "transaction_id": batch_values("transaction_id"),
            "account_id": batch_values("account_id"),
            "timestamp": frame["timestamp"].array[n_known:],
            "amount": batch_values("amount"),
            "currency": batch_values("currency"),
            "amount_eur": np.round(amount_eur[target], 2),
            "merchant_category": batch_values("merchant_category"),
            "country": batch_values("country"),
            "channel": batch_values("channel"),
            "amount_eur_log": log_amount[target],
            "amount_ratio_to_typical": ratio[target],
            "amount_zscore": zscore[target],
            "account_tx_count_prior": prior[target],
            "account_tx_count_1h": _window_counts(acc, sec, 3600)[target],
            "account_tx_count_24h": _window_counts(acc, sec, 86400)[target],
            "card_tx_count_10m": card_counts[target],
            "is_new_device": first_seen("device_id"),
            "is_new_merchant_category": first_seen("merchant_category"),
            "is_new_country": first_seen("country"),
            "hours_since_prev": hours_since[target],
            "travel_speed_kmh": speed[target],
            "hour_of_day": (nanos[n_known:] // 3_600_000_000_000) % 24,
            "is_ecommerce": (batch_values("channel") == "ecommerce").astype("int8"),
        }
    )
