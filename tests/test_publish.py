"""Per-run staging and the publish transaction, on a real DuckDB file."""

from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from orchestration_pipelines.audit import OUTBOX, AuditRecord, deliver_outbox, read_audit_log
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.publish import (
    STAGING_RETENTION,
    NothingStaged,
    publish_batch,
    read_staged,
    stage_rows,
)

STAGING, PUBLISHED = "fraud.decisions_staging", "fraud.decisions"
EARLIER, LATER = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        yield connection


def rows(prefix: str, n: int, decision: str = "auto_clear") -> pd.DataFrame:
    return pd.DataFrame({"transaction_id": [f"{prefix}{i}" for i in range(n)], "decision": decision})


def record_for(batch: str, run_id: str):
    def record(_con, n: int) -> AuditRecord:
        return AuditRecord(f"published:{run_id}:{batch}", "fraud", "batch_published", batch, {"rows": n})

    return record


def publish(con, batch: str, run_id: str, created: datetime, **extra):
    return publish_batch(
        con,
        staging=STAGING,
        published=PUBLISHED,
        batch_id=batch,
        run_id=run_id,
        run_created_at=created,
        source_sha256=f"sha-{run_id}",
        audit_record=record_for(batch, run_id),
        **extra,
    )


def published_ids(con, batch: str) -> list[str]:
    return sorted(
        r[0]
        for r in con.execute(f"SELECT transaction_id FROM {PUBLISHED} WHERE batch_id = ?", [batch]).fetchall()
    )


def test_runs_and_batches_are_staged_and_read_apart(con):
    stage_rows(con, STAGING, rows("a", 3), "day1.csv", "run-a")
    stage_rows(con, STAGING, rows("b", 5), "day1.csv", "run-b")  # a second run of the same batch
    stage_rows(con, STAGING, rows("c", 2), "day2.csv", "run-c")
    stage_rows(con, STAGING, rows("a", 4), "day1.csv", "run-a")  # a retried step replaces only its own rows
    assert sorted(read_staged(con, STAGING, "day1.csv", "run-a")["transaction_id"]) == [
        f"a{i}" for i in range(4)
    ]
    assert len(read_staged(con, STAGING, "day1.csv", "run-b")) == 5
    assert set(read_staged(con, STAGING, "day2.csv", "run-c")["run_id"]) == {"run-c"}


def test_publish_copies_only_this_runs_rows_with_its_outbox_record(con, tmp_path):
    stage_rows(con, STAGING, rows("a", 3), "day1.csv", "run-a")
    stage_rows(con, STAGING, rows("b", 5), "day1.csv", "run-b")
    publication = publish(con, "day1.csv", "run-a", EARLIER)
    assert (publication.status, publication.rows) == ("published", 3)
    assert published_ids(con, "day1.csv") == ["a0", "a1", "a2"]
    assert con.execute(f"SELECT event_id FROM {OUTBOX} WHERE delivered_seq IS NULL").fetchall() == [
        ("published:run-a:day1.csv",)
    ]
    assert read_staged(con, STAGING, "day1.csv", "run-a").empty  # published rows leave staging
    assert len(read_staged(con, STAGING, "day1.csv", "run-b")) == 5  # another run's rows stay

    # A retry of the same run publishes nothing twice and hands back the same record to deliver.
    again = publish(con, "day1.csv", "run-a", EARLIER)
    assert (again.status, again.event_id) == ("already_published", publication.event_id)
    store = OpStore(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    first = deliver_outbox(con, store, publication.event_id)[0]
    assert deliver_outbox(con, store, publication.event_id)[0] == first
    assert deliver_outbox(con, store) == []  # nothing pending any more
    assert [e.event_id for e in read_audit_log(store)] == ["published:run-a:day1.csv"]


def test_an_older_run_never_overwrites_a_newer_publication(con):
    stage_rows(con, STAGING, rows("old", 3), "day1.csv", "run-old")
    stage_rows(con, STAGING, rows("new", 2), "day1.csv", "run-new")
    assert publish(con, "day1.csv", "run-new", LATER).status == "published"
    superseded = publish(con, "day1.csv", "run-old", EARLIER)
    assert (superseded.status, superseded.published_run_id) == ("superseded", "run-new")
    assert published_ids(con, "day1.csv") == ["new0", "new1"]
    assert con.execute(f"SELECT count(*) FROM {OUTBOX}").fetchall()[0][0] == 1
    # The other way round, the newer run replaces the older one's publication.
    stage_rows(con, STAGING, rows("newest", 1), "day1.csv", "run-newest")
    assert publish(con, "day1.csv", "run-newest", LATER + timedelta(hours=1)).status == "published"
    assert published_ids(con, "day1.csv") == ["newest0"]


def test_a_failing_effect_in_the_transaction_leaves_everything_as_it_was(con):
    stage_rows(con, STAGING, rows("z", 1), "day0.csv", "run-z")
    publish(con, "day0.csv", "run-z", EARLIER)
    stage_rows(con, STAGING, rows("a", 3), "day1.csv", "run-a")
    seen = []

    def account_state(connection, batch_id, run_id):
        seen.append(len(read_staged(connection, STAGING, batch_id, run_id)))
        raise RuntimeError("state update failed")

    with pytest.raises(RuntimeError, match="state update failed"):
        publish(con, "day1.csv", "run-a", EARLIER, in_transaction=[account_state])
    assert seen == [3]  # the callable saw the staged rows inside the transaction
    assert published_ids(con, "day1.csv") == []
    assert con.execute(f"SELECT count(*) FROM {OUTBOX}").fetchall()[0][0] == 1  # day0's only
    assert len(read_staged(con, STAGING, "day1.csv", "run-a")) == 3


def test_nothing_staged_is_refused_not_published_as_empty(con):
    stage_rows(con, STAGING, rows("a", 3), "day1.csv", "run-a")
    assert publish(con, "day1.csv", "run-a", EARLIER).status == "published"
    with pytest.raises(NothingStaged):
        publish(con, "day1.csv", "run-b", LATER)
    assert published_ids(con, "day1.csv") == ["a0", "a1", "a2"]


def test_failed_runs_stay_inspectable_until_the_retention_sweep(con):
    stage_rows(con, STAGING, rows("failed", 3), "day1.csv", "run-failed")
    con.execute(f"UPDATE {STAGING} SET staged_at = staged_at - ?", [STAGING_RETENTION + timedelta(hours=1)])
    stage_rows(con, STAGING, rows("recent", 2), "day2.csv", "run-recent")  # any staging sweeps
    assert read_staged(con, STAGING, "day1.csv", "run-failed").empty
    assert len(read_staged(con, STAGING, "day2.csv", "run-recent")) == 2


def test_tables_of_an_earlier_version_gain_the_new_columns(con):
    con.execute("CREATE SCHEMA fraud")
    con.execute(
        f"CREATE TABLE {STAGING} AS "
        "SELECT 'day0.csv' AS batch_id, 'x' AS transaction_id, 'auto_clear' AS decision"
    )
    con.execute(f"CREATE TABLE {PUBLISHED} AS SELECT * FROM {STAGING}")
    stage_rows(con, STAGING, rows("a", 2), "day1.csv", "run-a")
    assert publish(con, "day1.csv", "run-a", EARLIER).rows == 2
    assert con.execute(f"SELECT count(*) FROM {PUBLISHED} WHERE run_id = 'run-a'").fetchall()[0][0] == 2
    assert con.execute(f"SELECT run_id FROM {PUBLISHED} WHERE batch_id = 'day0.csv'").fetchall() == [(None,)]


def test_read_staged_returns_the_stored_values_with_text_as_arrow_strings(con):
    staged = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "reason_codes": ["AMOUNT_SPIKE", None],
            "risk_score": [0.25, 0.5],
            "decided_at": pd.Timestamp("2026-11-01T10:00:00Z"),
        }
    )
    stage_rows(con, STAGING, staged, "day1.csv", "run-a")

    got = read_staged(con, STAGING, "day1.csv", "run-a").sort_values("transaction_id", ignore_index=True)

    assert list(got.columns) == [
        "transaction_id",
        "reason_codes",
        "risk_score",
        "decided_at",
        "batch_id",
        "run_id",
    ]
    assert got["transaction_id"].dtype == pd.StringDtype("pyarrow")
    assert got["reason_codes"].isna().tolist() == [False, True]
    assert got["risk_score"].tolist() == [0.25, 0.5]
    assert (got["decided_at"] == pd.Timestamp("2026-11-01T10:00:00Z")).all()
    assert set(got["batch_id"]) == {"day1.csv"} and set(got["run_id"]) == {"run-a"}


def test_stage_rows_leaves_the_callers_frame_alone(con):
    frame = rows("a", 3).assign(batch_id="from-upstream")
    before = frame.copy()

    stage_rows(con, STAGING, frame, "day1.csv", "run-a")

    pd.testing.assert_frame_equal(frame, before)
    assert set(read_staged(con, STAGING, "day1.csv", "run-a")["batch_id"]) == {"day1.csv"}


def _string_compression(con, table: str) -> set[str]:
    con.execute("CHECKPOINT")
    query = f"SELECT DISTINCT compression FROM pragma_storage_info('{table}') WHERE segment_type = 'VARCHAR'"
    return {compression for (compression,) in con.execute(query).fetchall()}


def test_staged_rows_are_stored_uncompressed_and_published_ones_compressed(con):
    many = rows("T", 150_000)  # more than one row group: written straight to the file, not the log
    stage_rows(con, STAGING, many, "b1", "run-1")
    assert _string_compression(con, STAGING) == {"Uncompressed"}
    assert con.execute("SELECT current_setting('force_compression')").fetchall() == [("auto",)]
    publish(con, "b1", "run-1", EARLIER)
    assert "Uncompressed" not in _string_compression(con, PUBLISHED)


def test_a_failed_staging_restores_compression(con):
    stage_rows(con, STAGING, rows("T", 3).assign(amount=1.5), "b1", "run-1")
    with pytest.raises(duckdb.Error):  # a value the staged column cannot hold
        stage_rows(con, STAGING, rows("U", 3).assign(amount="many"), "b1", "run-2")
    assert con.execute("SELECT current_setting('force_compression')").fetchall() == [("auto",)]
    assert read_staged(con, STAGING, "b1", "run-2").empty
