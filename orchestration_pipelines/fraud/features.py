"""Per-transaction risk features, computed vectorised over accounts' time-ordered history.

Every feature looks only backwards in time: a transaction is compared with what its account (or
card) did before it, in the batch itself and in the history passed alongside. ``compute_features``
serves training (history is the training table itself) and ad-hoc scoring with a history frame;
scheduled scoring computes the same features from the batch and the stored account state
(``account_state.features_from_state``), with the helpers below.
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
    "card_id",
    "device_id",
]
# What the features read: the context less the derived amount_eur.
USED_COLUMNS = [c for c in CONTEXT_COLUMNS if c != "amount_eur"]
# The context the scheduled path's features table keeps: the id that joins it to its transaction and
# the derived amount the policy rules read. The transaction's text columns are stored once, in
# ``fraud.transactions``, and joined back when decisions are staged (``scoring.with_context``).
FEATURE_TABLE_CONTEXT = ["transaction_id", "amount_eur"]
NO_PREVIOUS_HOURS = 24.0 * 30  # stands in for "no earlier transaction" so models need no NaN handling


# Look-back windows of the velocity features, in seconds; the account state keeps what they need.
HOUR_S, DAY_S, CARD_WINDOW_S = 3600, 86400, 600
_SECOND_NS = 1_000_000_000


def window_counts(group_keys: np.ndarray, seconds: np.ndarray, window_s: int) -> np.ndarray:
    """Rows of the same group within ``window_s`` seconds before each row (itself included).

    Expects rows sorted by (group, time). Packing group and time into one sorted int64 key turns the
    per-group rolling count into a single binary search.
    """
    key = group_keys.astype("int64") * (1 << 34) + seconds
    return np.arange(len(key)) - np.searchsorted(key, key - window_s, side="left") + 1


def first_seen(group_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """1 where this group meets this value for the first time (rows sorted by time within group)."""
    value_codes = pd.factorize(values)[0].astype("int64")
    pair = group_keys.astype("int64") * (int(value_codes.max(initial=0)) + 1) + value_codes
    return (~pd.Series(pair).duplicated().to_numpy()).astype("int8")


def utc_nanoseconds(df: pd.DataFrame) -> pd.DataFrame:
    """One timestamp type for every source: the warehouse returns microseconds in its own UTC zone
    object, files give nanoseconds, and concatenating the two would fall back to slow Python objects."""
    return df.assign(timestamp=df["timestamp"].dt.tz_convert("UTC").dt.as_unit("ns"))


def epoch_seconds(nanos: np.ndarray) -> np.ndarray:
    """Whole seconds since the epoch: the windows' clock, the same whatever else a frame holds."""
    return nanos // _SECOND_NS


def group_starts(sorted_groups: np.ndarray) -> np.ndarray:
    """For rows sorted by group, the position of the first row of each row's group."""
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    return np.repeat(starts, np.diff(np.r_[starts, len(sorted_groups)]))


def amount_statistics(
    amount_eur: np.ndarray, log_amount: np.ndarray, prior: np.ndarray, sums: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Ratio to the typical amount and z-score of the log amount, from the sums over earlier rows.

    ``sums`` are, per row, the sums of amount, log amount and squared log amount over the ``prior``
    earlier transactions of its account.
    """
    total, total_log, total_log2 = sums
    with np.errstate(divide="ignore", invalid="ignore"):
        typical = total / prior
        mean_log = total_log / prior
        var_log = total_log2 / prior - mean_log**2
    has_prior = prior > 0
    ratio = np.where(has_prior, amount_eur / np.where(has_prior, typical, 1.0), 1.0)
    zscore = np.where(
        has_prior,
        (log_amount - np.nan_to_num(mean_log)) / np.sqrt(np.maximum(np.nan_to_num(var_log), 0.0) + 0.25**2),
        0.0,
    )
    return ratio, zscore


def travel(
    has_previous: np.ndarray, seconds: np.ndarray, country: np.ndarray, previous: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hours since the previous transaction and the speed (km/h) the change of country implies."""
    hours_since = np.where(has_previous, (seconds - seconds[previous]) / 3600.0, NO_PREVIOUS_HOURS)
    km = np.where(has_previous, distance_km(country, country[previous]), 0.0)
    speed = np.nan_to_num(km, nan=0.0) / np.maximum(hours_since, 1.0 / 60.0)
    return hours_since, speed


def assemble(
    batch: pd.DataFrame,
    amount_eur: np.ndarray,
    features: dict[str, np.ndarray],
    context: list[str] = CONTEXT_COLUMNS,
) -> pd.DataFrame:
    """The result frame: ``batch``'s ``context`` columns (in its order) and the features computed for it."""
    nanos = pd.DatetimeIndex(batch["timestamp"]).asi8
    columns = {c: batch[c].array if c == "timestamp" else batch[c].to_numpy() for c in context if c in batch}
    columns["amount_eur"] = np.round(amount_eur, 2)
    return pd.DataFrame(
        {
            **{c: columns[c] for c in context},
            "amount_eur_log": np.log1p(amount_eur),
            **features,
            "hour_of_day": (nanos // (3600 * _SECOND_NS)) % 24,
            "is_ecommerce": (batch["channel"].to_numpy() == "ecommerce").astype("int8"),
        }
    )[[*context, *FEATURE_COLUMNS]]


def compute_features(transactions: pd.DataFrame, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Context columns plus ``FEATURE_COLUMNS`` for each row of ``transactions``, in its order.

    ``history`` (same contract, any overlap in accounts) only informs the features; its rows are not
    returned.
    """
    # Only the columns read below are stacked, and only the batch's rows are assembled into the
    # result: history can be several times the batch.
    batch = utc_nanoseconds(transactions[USED_COLUMNS]).reset_index(drop=True)
    parts = [batch]
    if history is not None and len(history):
        known = ~history["transaction_id"].isin(transactions["transaction_id"])
        parts.insert(0, utc_nanoseconds(history.loc[known, history.columns.intersection(USED_COLUMNS)]))
    n_known = len(parts[0]) if len(parts) > 1 else 0
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else batch

    account = pd.factorize(frame["account_id"])[0]
    card = pd.factorize(frame["card_id"])[0]
    nanos = pd.DatetimeIndex(frame["timestamp"]).asi8
    order = np.lexsort((nanos, account))  # stable: earlier rows of the frame first on equal times
    acc, sec = account[order], epoch_seconds(nanos)[order]
    amount_eur = amount_in_eur(frame)[order]
    log_amount = np.log1p(amount_eur)

    # Expanding account statistics over earlier transactions only.
    position = np.arange(len(frame))
    start = group_starts(acc)
    prior = position - start
    sums = tuple(
        (cumulative := np.r_[0.0, np.cumsum(values)])[position] - cumulative[start]
        for values in (amount_eur, log_amount, log_amount**2)
    )
    ratio, zscore = amount_statistics(amount_eur, log_amount, prior, sums)

    card_order = np.lexsort((sec, card[order]))
    card_counts = np.empty(len(frame), dtype="int64")
    card_counts[card_order] = window_counts(card[order][card_order], sec[card_order], CARD_WINDOW_S)
    hours_since, speed = travel(
        prior > 0, sec, frame["country"].to_numpy()[order], np.maximum(position - 1, 0)
    )

    restore = np.empty(len(order), dtype="int64")
    restore[order] = np.arange(len(order))
    target = restore[n_known:]  # where the batch's rows sit in (account, time) order, in input order

    def is_new(column: str) -> np.ndarray:
        return first_seen(acc, frame[column].to_numpy()[order])[target]

    return assemble(
        batch,
        amount_in_eur(batch),
        {
            "amount_ratio_to_typical": ratio[target],
            "amount_zscore": zscore[target],
            "account_tx_count_prior": prior[target],
            "account_tx_count_1h": window_counts(acc, sec, HOUR_S)[target],
            "account_tx_count_24h": window_counts(acc, sec, DAY_S)[target],
            "card_tx_count_10m": card_counts[target],
            "is_new_device": is_new("device_id"),
            "is_new_merchant_category": is_new("merchant_category"),
            "is_new_country": is_new("country"),
            "hours_since_prev": hours_since[target],
            "travel_speed_kmh": speed[target],
        },
    )
