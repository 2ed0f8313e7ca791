"""Features from batch + account state equal features from the full history; the state stays exact
through incremental publishes, retries, re-publishes with changed content and a rebuild."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from orchestration_pipelines.fraud.account_state import (
    ACCOUNT_STATE_TABLE,
    CARD_STATE_TABLE,
    SOURCE_COLUMNS,
    StateSnapshot,
    features_from_state,
    load_state,
    rebuild_account_state,
    update_account_state,
)
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.generator import unlabelled

HISTORY_END = pd.Timestamp("2026-10-31T12:00:00Z")
BATCH_ENDS = [pd.Timestamp("2026-11-01T12:00:00Z"), pd.Timestamp("2026-11-02T18:00:00Z")]


@pytest.fixture(scope="module")
def timeline(small_world):
    """History up to noon, then two batches that each span a midnight, the second with new accounts.

    Cut by time from one sorted stream, so no batch holds a transaction older than the history.
    """
    stream = pd.concat([small_world.history, *small_world.batches], ignore_index=True)
    stream = stream.sort_values("timestamp", kind="stable", ignore_index=True)
    history = stream[stream["timestamp"] < HISTORY_END]
    first = stream[(stream["timestamp"] >= HISTORY_END) & (stream["timestamp"] < BATCH_ENDS[0])]
    second = stream[(stream["timestamp"] >= BATCH_ENDS[0]) & (stream["timestamp"] < BATCH_ENDS[1])].copy()
    newcomers = second["account_id"].isin(second["account_id"].drop_duplicates().head(40))
    for column in ("account_id", "card_id"):
        second.loc[newcomers, column] = "new-" + second.loc[newcomers, column]
    return history, unlabelled(first).reset_index(drop=True), unlabelled(second).reset_index(drop=True)


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        connection.execute("CREATE SCHEMA fraud")
        yield connection


def load_history(con, history: pd.DataFrame) -> None:
    con.register("history_frame", history)
    con.execute("CREATE TABLE fraud.labelled_history AS SELECT * FROM history_frame")
    con.unregister("history_frame")


def stage(con, batch: pd.DataFrame, batch_id: str, run_id: str) -> None:
    """Staged rows as the staging step writes them: the batch's columns plus batch and run ids."""
    frame = batch[list(SOURCE_COLUMNS)].assign(batch_id=batch_id, run_id=run_id, decision="auto_clear")
    con.register("staged_frame", frame)
    con.execute("CREATE TABLE IF NOT EXISTS fraud.decisions_staging AS SELECT * FROM staged_frame LIMIT 0")
    con.execute("DELETE FROM fraud.decisions_staging WHERE batch_id = ? AND run_id = ?", [batch_id, run_id])
    con.execute("INSERT INTO fraud.decisions_staging SELECT * FROM staged_frame")
    con.unregister("staged_frame")


def publish(con, batch_id: str, run_id: str, update_first: bool = False) -> None:
    """The publish transaction: replace the batch's published rows, update the state, commit."""
    con.execute("BEGIN TRANSACTION")
    if update_first:
        update_account_state(con, batch_id, run_id)
    con.execute("CREATE TABLE IF NOT EXISTS fraud.decisions AS SELECT * FROM fraud.decisions_staging LIMIT 0")
    con.execute("DELETE FROM fraud.decisions WHERE batch_id = ?", [batch_id])
    con.execute(
        "INSERT INTO fraud.decisions BY NAME "
        "SELECT * FROM fraud.decisions_staging WHERE batch_id = ? AND run_id = ?",
        [batch_id, run_id],
    )
    if not update_first:
        update_account_state(con, batch_id, run_id)
    con.execute("COMMIT")


def assert_same_features(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every column equal: exactly for ids, counts and flags; floats to 1e-7, as the reference takes
    its sums as differences of one running sum over the whole frame and the state in another order."""
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in expected.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(actual[column], expected[column], rtol=1e-7, atol=1e-7, err_msg=column)
        else:
            assert (actual[column].to_numpy() == expected[column].to_numpy()).all(), column


def state_tables(con) -> dict[str, pd.DataFrame]:
    """Both state tables in a canonical form: sorted rows, sorted set-valued lists."""
    accounts = con.execute(
        f"SELECT * EXCLUDE (devices, merchant_categories, countries), list_sort(devices) AS devices, "
        f"list_sort(merchant_categories) AS mccs, list_sort(countries) AS countries "
        f"FROM {ACCOUNT_STATE_TABLE} ORDER BY account_id"
    ).df()
    cards = con.execute(f"SELECT * FROM {CARD_STATE_TABLE} ORDER BY card_id").df()
    return {"accounts": accounts, "cards": cards}


def assert_same_state(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, check_exact=False, rtol=1e-12, obj=name)


def test_features_from_state_equal_features_from_full_history(con, timeline):
    history, first, second = timeline
    assert first["timestamp"].dt.date.nunique() == 2 and second["timestamp"].dt.date.nunique() == 2
    load_history(con, history)
    rebuild_account_state(con)

    assert_same_features(features_from_state(first, load_state(con, first)), compute_features(first, history))

    stage(con, first, "first", "run-1")
    publish(con, "first", "run-1")
    state = load_state(con, second)
    newcomers = set(second.loc[second["account_id"].str.startswith("new-"), "account_id"])
    assert len(newcomers) == 40 and not newcomers & set(state.accounts["account_id"])
    expected = compute_features(second, pd.concat([history, first], ignore_index=True))
    assert_same_features(features_from_state(second, state), expected)


def test_state_covers_only_the_batch_accounts_and_says_how_much_history_it_summarises(con, timeline):
    history, first, _ = timeline
    load_history(con, history)
    rebuild_account_state(con)
    state = load_state(con, first)
    assert set(state.accounts["account_id"]) == set(first["account_id"]) & set(history["account_id"])
    assert state.transactions == history["account_id"].isin(first["account_id"]).sum()
    assert set(state.card_recent["card_id"]) <= set(first["card_id"])
    header_only = first.head(0)
    assert len(features_from_state(header_only, load_state(con, header_only))) == 0


def test_no_state_yet_means_features_from_the_batch_alone(con, timeline):
    _, first, _ = timeline
    state = load_state(con, first)
    assert state.transactions == 0
    assert_same_features(features_from_state(first, state), compute_features(first))
    empty = features_from_state(first.head(0), StateSnapshot.empty())
    assert len(empty) == 0 and list(empty.columns) == list(compute_features(first).columns)


def test_incremental_publishes_equal_a_rebuild(con, timeline):
    history, first, second = timeline
    load_history(con, history)
    rebuild_account_state(con)
    for batch_id, batch in (("first", first), ("second", second)):
        stage(con, batch, batch_id, "run-1")
        publish(con, batch_id, "run-1")
    incremental = state_tables(con)
    rebuild_account_state(con)
    assert_same_state(state_tables(con), incremental)


def test_a_retried_publish_of_the_same_run_does_not_count_twice(con, timeline):
    history, first, _ = timeline
    load_history(con, history)
    rebuild_account_state(con)
    stage(con, first, "first", "run-1")
    publish(con, "first", "run-1")
    once = state_tables(con)
    publish(con, "first", "run-1")
    assert_same_state(state_tables(con), once)


@pytest.mark.parametrize("update_first", [False, True], ids=["state-after-replace", "state-before-replace"])
def test_republishing_changed_content_recomputes_both_versions_accounts(con, timeline, update_first):
    history, _, second = timeline
    load_history(con, history)
    rebuild_account_state(con)
    stage(con, second, "second", "run-1")
    publish(con, "second", "run-1")

    # The changed file: new amounts, a third of the rows gone (some accounts only in the old version),
    # and some rows moved to other accounts.
    changed = second.iloc[: 2 * len(second) // 3].copy()
    changed["amount"] = changed["amount"] * 1.5
    changed.loc[changed.index[:25], "account_id"] = "moved-" + changed.loc[changed.index[:25], "account_id"]
    stage(con, changed, "second", "run-2")
    publish(con, "second", "run-2", update_first=update_first)
    republished = state_tables(con)

    rebuild_account_state(con)
    assert_same_state(republished, state_tables(con))
    stale = set(second["account_id"]) - set(changed["account_id"]) - set(history["account_id"])
    assert stale and not stale & set(republished["accounts"]["account_id"])


def test_a_late_transaction_sees_everything_published_and_exact_recent_windows(con):
    at = pd.Timestamp("2026-11-01T10:00:00Z")

    def tx(tid: str, minutes: int, country: str = "DE") -> dict:
        return {
            "transaction_id": tid,
            "account_id": "A",
            "card_id": "C",
            "timestamp": at + pd.Timedelta(minutes=minutes),
            "amount": 20.0,
            "currency": "EUR",
            "merchant_id": "M",
            "merchant_category": "5411",
            "country": country,
            "channel": "card_present",
            "device_id": "d1",
        }

    published = pd.DataFrame([tx("p1", 0), tx("p2", 120, "FR")])
    stage(con, published, "earlier", "run-1")
    publish(con, "earlier", "run-1")
    late = pd.DataFrame([tx("late", 30, "FR")])
    features = features_from_state(late, load_state(con, late)).iloc[0]
    assert features["account_tx_count_prior"] == 2  # as of publication: the later p2 counts
    assert features["account_tx_count_1h"] == 2  # p1 (30 min before) and itself, not p2
    assert features["hours_since_prev"] == 0.5  # to p1, the latest kept transaction before it
    assert features["travel_speed_kmh"] > 1000  # DE at 10:00, FR at 10:30


def test_decisions_published_before_the_state_existed_are_left_to_labelled_history(con, timeline):
    """An older warehouse's published rows lack the card and device: the rebuild still succeeds."""
    history, first, second = timeline
    load_history(con, history)
    old = first[list(SOURCE_COLUMNS)].drop(columns=["card_id", "device_id"])
    con.register("old_frame", old.assign(batch_id="old", decision="auto_clear"))
    con.execute("CREATE TABLE fraud.decisions AS SELECT * FROM old_frame")
    assert rebuild_account_state(con)["transactions"] == len(history)
    # The gate adds the new columns to the published table; its older rows hold NULLs there.
    con.execute("ALTER TABLE fraud.decisions ADD COLUMN card_id VARCHAR")
    con.execute("ALTER TABLE fraud.decisions ADD COLUMN device_id VARCHAR")
    con.execute("ALTER TABLE fraud.decisions ADD COLUMN run_id VARCHAR")
    stage(con, second, "second", "run-1")
    publish(con, "second", "run-1")
    assert rebuild_account_state(con)["transactions"] == len(history) + len(second)


def test_a_published_batch_scored_again_does_not_see_itself_as_its_own_past(con, timeline):
    """A changed file re-landed under the same name is scored against the state without its old rows,
    and reading that state writes nothing."""
    history, first, _ = timeline
    load_history(con, history)
    rebuild_account_state(con)
    stage(con, first, "first", "run-1")
    publish(con, "first", "run-1")
    before = state_tables(con)

    again = load_state(con, first, "first")
    assert_same_features(features_from_state(first, again), compute_features(first, history))
    assert_same_state(state_tables(con), before)
    # Another batch's view is the stored state, which includes the published batch.
    assert load_state(con, first, "other").transactions > again.transactions
