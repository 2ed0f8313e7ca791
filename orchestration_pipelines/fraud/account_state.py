"""Incremental account state: what the features need to know about each account's and card's past.

Scoring a batch against raw history costs as much as the history; this state costs as much as the
batch's accounts. ``fraud.account_state`` keeps one row per account: transaction count, sums of the
amount in EUR, of its log and of its squared log, the devices, merchant categories and countries seen,
the last transaction's time and country, and every transaction (time, country) within a day of the
last one, which the 1-hour and 24-hour windows and the time since the previous transaction need.
``fraud.card_state`` keeps each card's timestamps within ten minutes of its last, for the card window.
``features_from_state`` turns batch + state into the same columns as ``compute_features(batch,
history)`` does from the full history.

Semantics:
- All-time, not a 30-day look-back: counts, amount statistics and seen values cover every published
  or labelled transaction of the account, as the model's training features do (expanding over the
  whole training table).
- Updated only from the rows one run staged and published (``update_account_state``, called inside
  the publish transaction), so a retried run cannot count a batch twice. A batch published again by
  another run (a changed file re-landed) is not merged on top: its accounts and cards, old and new,
  are recomputed from the published transactions (labelled history plus published decisions, this
  batch's rows replaced by the run's), which costs their history once.
- State is as of publication. A transaction earlier than its account's latest published one (a late
  arrival, or batches published out of order) is compared with everything published so far,
  including later transactions, for its counts, amount statistics and seen values; its window counts
  and time since the previous transaction use the kept recent transactions not after it, which are
  exact when it is late by less than the window; beyond that it is treated as having no known
  previous transaction.
- ``rebuild_account_state`` recomputes everything from labelled history plus published decisions
  (one row per transaction id, published rows first); the rebuild job and the training job run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from orchestration_pipelines.fraud.contract import EUR_PER_UNIT, amount_in_eur
from orchestration_pipelines.fraud.features import (
    CARD_WINDOW_S,
    CONTEXT_COLUMNS,
    DAY_S,
    HOUR_S,
    USED_COLUMNS,
    amount_statistics,
    assemble,
    epoch_seconds,
    first_seen,
    group_starts,
    travel,
    utc_nanoseconds,
    window_counts,
)
from orchestration_pipelines.fraud.tables import HISTORY_TABLE, PUBLISHED_TABLE, STAGING_TABLE

ACCOUNT_STATE_TABLE = "fraud.account_state"
CARD_STATE_TABLE = "fraud.card_state"
# Which run's rows of each batch the state holds, and the accounts and cards they touched.
APPLIED_BATCHES_TABLE = "fraud.account_state_batches"
# What the state is computed from: the staged/published/labelled columns it reads.
SOURCE_COLUMNS = (
    "transaction_id",
    "account_id",
    "card_id",
    "timestamp",
    "amount",
    "currency",
    "device_id",
    "merchant_category",
    "country",
)
SEEN_COLUMNS = {"device_id": "devices", "merchant_category": "merchant_categories", "country": "countries"}

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS fraud;
CREATE TABLE IF NOT EXISTS {ACCOUNT_STATE_TABLE} (
    account_id VARCHAR NOT NULL,
    tx_count BIGINT NOT NULL,
    amount_eur_sum DOUBLE NOT NULL,
    amount_log_sum DOUBLE NOT NULL,
    amount_log_sq_sum DOUBLE NOT NULL,
    devices VARCHAR[] NOT NULL,
    merchant_categories VARCHAR[] NOT NULL,
    countries VARCHAR[] NOT NULL,
    last_timestamp TIMESTAMPTZ NOT NULL,
    last_country VARCHAR NOT NULL,
    recent_transactions STRUCT(occurred_at TIMESTAMPTZ, country VARCHAR)[] NOT NULL
);
CREATE TABLE IF NOT EXISTS {CARD_STATE_TABLE} (
    card_id VARCHAR NOT NULL,
    last_timestamp TIMESTAMPTZ NOT NULL,
    recent_timestamps TIMESTAMPTZ[] NOT NULL
);
CREATE TABLE IF NOT EXISTS {APPLIED_BATCHES_TABLE} (
    batch_id VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    accounts VARCHAR[] NOT NULL,
    cards VARCHAR[] NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);
"""


def _seconds(timestamp: str) -> str:
    """Whole epoch seconds in SQL: the windows' clock in ``features``."""
    return f"(epoch_us({timestamp}) // 1000000)"


# The rate as the same double the Python side multiplies by (a decimal literal would round differently).
_RATE_CASES = " ".join(
    f"WHEN '{currency}' THEN CAST('{rate!r}' AS DOUBLE)" for currency, rate in EUR_PER_UNIT.items()
)
_EUR_RATE = f"CASE currency {_RATE_CASES} END"

# Fold ``source`` rows into the account state: the rows' aggregates are added to each account's
# stored ones, and recent transactions are those within a day of the new last transaction.
_FOLD_ACCOUNTS = f"""
WITH src AS MATERIALIZED (SELECT *, amount * ({_EUR_RATE}) AS eur FROM ({{source}})),
arrived AS (
    SELECT account_id, count(*) AS tx_count, sum(eur) AS eur_sum, sum(ln(1 + eur)) AS log_sum,
        sum(ln(1 + eur) ** 2) AS log_sq_sum, list(DISTINCT device_id) AS devices,
        list(DISTINCT merchant_category) AS merchant_categories, list(DISTINCT country) AS countries,
        max(timestamp) AS last_timestamp
    FROM src GROUP BY account_id
),
merged AS (
    SELECT a.account_id,
        a.tx_count + coalesce(s.tx_count, 0) AS tx_count,
        a.eur_sum + coalesce(s.amount_eur_sum, 0) AS amount_eur_sum,
        a.log_sum + coalesce(s.amount_log_sum, 0) AS amount_log_sum,
        a.log_sq_sum + coalesce(s.amount_log_sq_sum, 0) AS amount_log_sq_sum,
        list_distinct(list_concat(s.devices, a.devices)) AS devices,
        list_distinct(list_concat(s.merchant_categories, a.merchant_categories)) AS merchant_categories,
        list_distinct(list_concat(s.countries, a.countries)) AS countries,
        greatest(a.last_timestamp, s.last_timestamp) AS last_timestamp,
        {_seconds("greatest(a.last_timestamp, s.last_timestamp)")} - {DAY_S} AS keep_from,
        coalesce(s.recent_transactions, []) AS kept
    FROM arrived a LEFT JOIN {ACCOUNT_STATE_TABLE} s USING (account_id)
),
arrived_recent AS (
    SELECT account_id,
        list({{'occurred_at': timestamp, 'country': country}} ORDER BY timestamp, transaction_id) AS recent
    FROM src JOIN merged m USING (account_id)
    WHERE {_seconds("timestamp")} >= m.keep_from
    GROUP BY account_id
),
folded AS (
    SELECT m.*, list_concat(
        list_filter(m.kept, lambda t: {_seconds("t.occurred_at")} >= m.keep_from), coalesce(r.recent, [])
    ) AS recent_transactions
    FROM merged m LEFT JOIN arrived_recent r USING (account_id)
)
SELECT account_id, tx_count, amount_eur_sum, amount_log_sum, amount_log_sq_sum, devices,
    merchant_categories, countries, last_timestamp,
    list_filter(recent_transactions, lambda t: t.occurred_at = last_timestamp)[-1].country AS last_country,
    recent_transactions
FROM folded
"""

_FOLD_CARDS = f"""
WITH src AS MATERIALIZED ({{source}}),
merged AS (
    SELECT a.card_id, greatest(a.last_timestamp, s.last_timestamp) AS last_timestamp,
        {_seconds("greatest(a.last_timestamp, s.last_timestamp)")} - {CARD_WINDOW_S} AS keep_from,
        coalesce(s.recent_timestamps, []) AS kept
    FROM (SELECT card_id, max(timestamp) AS last_timestamp FROM src GROUP BY card_id) a
    LEFT JOIN {CARD_STATE_TABLE} s USING (card_id)
),
arrived_recent AS (
    SELECT card_id, list(timestamp ORDER BY timestamp, transaction_id) AS recent
    FROM src JOIN merged m USING (card_id)
    WHERE {_seconds("timestamp")} >= m.keep_from
    GROUP BY card_id
)
SELECT m.card_id, m.last_timestamp, list_concat(
    list_filter(m.kept, lambda t: {_seconds("t")} >= m.keep_from), coalesce(r.recent, [])
) AS recent_timestamps
FROM merged m LEFT JOIN arrived_recent r USING (card_id)
"""


def create_state_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The table's column names; empty when it does not exist."""
    schema, name = table.split(".")
    return {
        column
        for (column,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
    }


def _published_with_state_columns(con: duckdb.DuckDBPyConnection) -> str | None:
    """The condition selecting published rows that carry the state's columns, or None when the
    published table has none: rows published before the state existed lack the card and device,
    and are left to labelled history."""
    have = _columns(con, PUBLISHED_TABLE)
    if not {*SOURCE_COLUMNS, "batch_id", "run_id"} <= have:
        return None
    return "card_id IS NOT NULL AND device_id IS NOT NULL"


_STATE = {"account_id": (ACCOUNT_STATE_TABLE, _FOLD_ACCOUNTS), "card_id": (CARD_STATE_TABLE, _FOLD_CARDS)}


def _fold(con: duckdb.DuckDBPyConnection, key: str, source: str, params: dict) -> None:
    """Add the transactions that ``source`` (SQL with ``SOURCE_COLUMNS``) selects to the account
    (``key`` = account_id) or card state. Each changed row is replaced, so the table needs no index."""
    table, fold = _STATE[key]
    con.execute(f"CREATE OR REPLACE TEMP TABLE folded_state AS {fold.replace('{source}', source)}", params)
    con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM folded_state)")
    con.execute(f"INSERT INTO {table} SELECT * FROM folded_state")
    con.execute("DROP TABLE folded_state")


def _staged_rows() -> str:
    return (
        f"SELECT {', '.join(SOURCE_COLUMNS)} FROM {STAGING_TABLE} "
        "WHERE batch_id = $batch_id AND run_id = $run_id"
    )


def _known_transactions(
    con: duckdb.DuckDBPyConnection, with_staged: bool, without_batch: bool = False
) -> str:
    """Every known transaction once: this run's staged rows (``with_staged``, replacing the batch's
    published ones), then published decisions (all but ``$batch_id``'s with ``without_batch``), then
    labelled history (whose labels arrive after the transactions were published)."""
    columns = ", ".join(SOURCE_COLUMNS)
    sources = [_staged_rows()] if with_staged else []
    published = _published_with_state_columns(con)
    if published:
        other_batches = " AND batch_id <> $batch_id" if with_staged or without_batch else ""
        sources.append(f"SELECT {columns} FROM {PUBLISHED_TABLE} WHERE {published}{other_batches}")
    if _columns(con, HISTORY_TABLE):
        sources.append(f"SELECT {columns} FROM {HISTORY_TABLE}")
    if not sources:
        return f"SELECT {columns} FROM {PUBLISHED_TABLE} WHERE false"
    ranked = " UNION ALL ".join(f"SELECT *, {i} AS precedence FROM ({s})" for i, s in enumerate(sources))
    return (
        f"SELECT {columns} FROM ({ranked}) "
        "QUALIFY row_number() OVER (PARTITION BY transaction_id ORDER BY precedence) = 1"
    )


def _recompute(con: duckdb.DuckDBPyConnection, known: str, keys: dict[str, list], params: dict) -> None:
    """Replace the state of the given accounts and cards by what ``known`` transactions say of them."""
    for key, values in keys.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE affected AS SELECT DISTINCT unnest(?) AS {key}", [values])
        con.execute(f"DELETE FROM {_STATE[key][0]} WHERE {key} IN (SELECT {key} FROM affected)")
        _fold(con, key, f"SELECT * FROM ({known}) WHERE {key} IN (SELECT {key} FROM affected)", params)
        con.execute("DROP TABLE affected")


def _applied(con: duckdb.DuckDBPyConnection, batch_id: str) -> bool:
    if not _columns(con, APPLIED_BATCHES_TABLE):
        return False
    query = f"SELECT count(*) FROM {APPLIED_BATCHES_TABLE} WHERE batch_id = ?"
    return con.execute(query, [batch_id]).fetchall()[0][0] > 0


def update_account_state(con: duckdb.DuckDBPyConnection, batch_id: str, run_id: str) -> None:
    """Fold the rows that run ``run_id`` staged for ``batch_id`` into the state.

    Runs inside the publish transaction (it neither begins nor commits), before or after the batch's
    published rows are replaced. First publication of a batch: its rows are added. The same run again
    (a retried publish): nothing changes. Another run of a published batch: the accounts and cards of
    both versions are recomputed from the known transactions with this run's rows in the batch's place.
    """
    create_state_tables(con)
    params = {"batch_id": batch_id, "run_id": run_id}
    applied = next(
        iter(
            con.execute(
                f"SELECT run_id, accounts, cards FROM {APPLIED_BATCHES_TABLE} WHERE batch_id = ?", [batch_id]
            ).fetchall()
        ),
        None,
    )
    if applied is not None and applied[0] == run_id:
        return
    accounts, cards = con.execute(
        "SELECT coalesce(list(DISTINCT account_id), []), coalesce(list(DISTINCT card_id), []) "
        f"FROM ({_staged_rows()})",
        params,
    ).fetchall()[0]
    if applied is None:
        for key in _STATE:
            _fold(con, key, _staged_rows(), params)
    else:
        _recompute(
            con,
            _known_transactions(con, with_staged=True),
            {"account_id": [*applied[1], *accounts], "card_id": [*applied[2], *cards]},
            params,
        )
    con.execute(f"DELETE FROM {APPLIED_BATCHES_TABLE} WHERE batch_id = ?", [batch_id])
    con.execute(
        f"INSERT INTO {APPLIED_BATCHES_TABLE} VALUES (?, ?, ?, ?, now())", [batch_id, run_id, accounts, cards]
    )


def rebuild_account_state(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Recompute the whole state from labelled history and published decisions, in one transaction.

    Returns the number of accounts, cards and transactions the state now covers.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        create_state_tables(con)
        for table in (ACCOUNT_STATE_TABLE, CARD_STATE_TABLE, APPLIED_BATCHES_TABLE):
            con.execute(f"DELETE FROM {table}")
        known = _known_transactions(con, with_staged=False)
        for key in _STATE:
            _fold(con, key, known, {})
        published = _published_with_state_columns(con)
        if published:
            con.execute(
                f"INSERT INTO {APPLIED_BATCHES_TABLE} SELECT batch_id, any_value(run_id), "
                "list(DISTINCT account_id), list(DISTINCT card_id), now() "
                f"FROM {PUBLISHED_TABLE} WHERE {published} GROUP BY batch_id"
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    accounts, transactions = con.execute(
        f"SELECT count(*), coalesce(sum(tx_count), 0) FROM {ACCOUNT_STATE_TABLE}"
    ).fetchall()[0]
    cards = con.execute(f"SELECT count(*) FROM {CARD_STATE_TABLE}").fetchall()[0][0]
    return {"accounts": accounts, "cards": cards, "transactions": int(transactions)}


def _frame(**columns: str) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


@dataclass(frozen=True)
class StateSnapshot:
    """The stored state of one batch's accounts and cards, as flat frames."""

    accounts: pd.DataFrame  # account_id, tx_count, amount_eur_sum, amount_log_sum, amount_log_sq_sum
    seen: dict[str, pd.DataFrame]  # per SEEN_COLUMNS key: account_id, value
    recent: pd.DataFrame  # account_id, occurred_at, country: transactions within a day of the account's last
    card_recent: pd.DataFrame  # card_id, occurred_at: timestamps within ten minutes of the card's last

    @classmethod
    def empty(cls) -> StateSnapshot:
        at = "datetime64[ns, UTC]"
        return cls(
            accounts=_frame(
                account_id="object",
                tx_count="int64",
                amount_eur_sum="float64",
                amount_log_sum="float64",
                amount_log_sq_sum="float64",
            ),
            seen={column: _frame(account_id="object", value="object") for column in SEEN_COLUMNS},
            recent=_frame(account_id="object", occurred_at=at, country="object"),
            card_recent=_frame(card_id="object", occurred_at=at),
        )

    @property
    def transactions(self) -> int:
        """How many earlier transactions of the batch's accounts the state summarises."""
        return int(self.accounts["tx_count"].sum())


def load_state(
    con: duckdb.DuckDBPyConnection, batch: pd.DataFrame, batch_id: str | None = None
) -> StateSnapshot:
    """The stored state of ``batch``'s accounts and cards (empty before any state exists); reads only.

    A batch the state already holds (``batch_id`` scored again, e.g. a changed file re-landed) must not
    see itself as its own past: its accounts and cards are recomputed without it, read, and the
    transaction rolled back, so nothing is written.
    """
    if not _columns(con, ACCOUNT_STATE_TABLE):
        return StateSnapshot.empty()
    if batch_id is None or not _applied(con, batch_id):
        return _read_state(con, batch)
    con.execute("BEGIN TRANSACTION")
    try:
        keys = {key: batch[key].drop_duplicates().tolist() for key in _STATE}
        _recompute(
            con, _known_transactions(con, with_staged=False, without_batch=True), keys, {"batch_id": batch_id}
        )
        return _read_state(con, batch)
    finally:
        con.execute("ROLLBACK")


def _read_state(con: duckdb.DuckDBPyConnection, batch: pd.DataFrame) -> StateSnapshot:
    con.register("batch_accounts", batch[["account_id"]].drop_duplicates())
    con.register("batch_cards", batch[["card_id"]].drop_duplicates())

    def query(select: str, table: str = ACCOUNT_STATE_TABLE, keys: str = "accounts") -> pd.DataFrame:
        key = f"{keys[:-1]}_id"
        return (
            con.sql(f"SELECT {select} FROM {table} SEMI JOIN batch_{keys} USING ({key})")
            .to_arrow_table()
            .to_pandas()
        )

    try:
        return StateSnapshot(
            accounts=query("account_id, tx_count, amount_eur_sum, amount_log_sum, amount_log_sq_sum"),
            seen={
                column: query(f"account_id, unnest({stored}) AS value")
                for column, stored in SEEN_COLUMNS.items()
            },
            recent=query("account_id, unnest(recent_transactions, recursive := true)"),
            card_recent=query("card_id, unnest(recent_timestamps) AS occurred_at", CARD_STATE_TABLE, "cards"),
        )
    finally:
        con.unregister("batch_accounts")
        con.unregister("batch_cards")


def _nanoseconds(timestamps: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(timestamps).tz_convert("UTC").as_unit("ns").asi8


def features_from_state(
    transactions: pd.DataFrame, state: StateSnapshot, context: list[str] = CONTEXT_COLUMNS
) -> pd.DataFrame:
    """``compute_features(transactions, history)`` from the batch and its accounts' stored state, with
    the ``context`` columns of the transaction (all of ``CONTEXT_COLUMNS`` by default).

    The kept recent transactions stand in for the history in the time-ordered arrays (windows, time
    since the previous transaction, travel); counts, amount sums and seen values come from the
    state's aggregates plus the batch's own earlier rows.
    """
    batch = utc_nanoseconds(transactions[USED_COLUMNS]).reset_index(drop=True)
    n_batch, n_kept = len(batch), len(state.recent)
    accounts, account_ids = pd.factorize(
        np.concatenate([state.recent["account_id"].to_numpy(object), batch["account_id"].to_numpy(object)])
    )
    nanos = np.concatenate([_nanoseconds(state.recent["occurred_at"]), _nanoseconds(batch["timestamp"])])
    order = np.lexsort((nanos, accounts))  # stable: kept transactions before batch rows at equal times
    acc, sec = accounts[order], epoch_seconds(nanos)[order]
    in_batch = order >= n_kept
    batch_order = order[in_batch] - n_kept  # the batch's rows in (account, time) order
    restore = np.empty(n_batch, dtype="int64")
    restore[batch_order] = np.arange(n_batch)

    # Counts and amount sums: the account's stored ones plus the batch's earlier rows.
    stored = state.accounts
    codes = pd.Index(account_ids).get_indexer(stored["account_id"])

    def per_account(column: str) -> np.ndarray:
        values = np.zeros(len(account_ids))
        values[codes] = stored[column].to_numpy("float64")
        return values

    batch_acc = acc[in_batch]
    amount_eur = amount_in_eur(batch)[batch_order]
    log_amount = np.log1p(amount_eur)
    batch_position = np.arange(n_batch)
    batch_start = group_starts(batch_acc)
    prior = per_account("tx_count")[batch_acc].astype("int64") + batch_position - batch_start
    sums = tuple(
        per_account(column)[batch_acc]
        + (cumulative := np.r_[0.0, np.cumsum(values)])[batch_position]
        - cumulative[batch_start]
        for column, values in (
            ("amount_eur_sum", amount_eur),
            ("amount_log_sum", log_amount),
            ("amount_log_sq_sum", log_amount**2),
        )
    )
    ratio, zscore = amount_statistics(amount_eur, log_amount, prior, sums)

    # Windows and the previous transaction over kept + batch rows in time order.
    position = np.arange(len(order))
    has_previous = position > group_starts(acc)
    country = np.concatenate([state.recent["country"].to_numpy(object), batch["country"].to_numpy(object)])
    hours_since, speed = travel(has_previous, sec, country[order], np.maximum(position - 1, 0))

    cards, _ = pd.factorize(
        np.concatenate([state.card_recent["card_id"].to_numpy(object), batch["card_id"].to_numpy(object)])
    )
    card_nanos = np.concatenate(
        [_nanoseconds(state.card_recent["occurred_at"]), _nanoseconds(batch["timestamp"])]
    )
    card_order = np.lexsort((card_nanos, cards))
    card_counts = np.empty(len(cards), dtype="int64")
    card_counts[card_order] = window_counts(
        cards[card_order], epoch_seconds(card_nanos)[card_order], CARD_WINDOW_S
    )

    def is_new(column: str) -> np.ndarray:
        seen = state.seen[column]
        known = len(seen)
        groups = np.concatenate([pd.Index(account_ids).get_indexer(seen["account_id"]), batch_acc])
        values = np.concatenate([seen["value"].to_numpy(object), batch[column].to_numpy(object)[batch_order]])
        return first_seen(groups, values)[known:]

    def in_input_order(sorted_values: np.ndarray) -> np.ndarray:
        return sorted_values[restore]

    return assemble(
        batch,
        amount_in_eur(batch),
        {
            "amount_ratio_to_typical": in_input_order(ratio),
            "amount_zscore": in_input_order(zscore),
            "account_tx_count_prior": in_input_order(prior),
            "account_tx_count_1h": in_input_order(window_counts(acc, sec, HOUR_S)[in_batch]),
            "account_tx_count_24h": in_input_order(window_counts(acc, sec, DAY_S)[in_batch]),
            "card_tx_count_10m": card_counts[len(state.card_recent) :],
            "is_new_device": in_input_order(is_new("device_id")),
            "is_new_merchant_category": in_input_order(is_new("merchant_category")),
            "is_new_country": in_input_order(is_new("country")),
            "hours_since_prev": in_input_order(hours_since[in_batch]),
            "travel_speed_kmh": in_input_order(speed[in_batch]),
        },
        context,
    )
