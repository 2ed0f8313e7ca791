"""Fraud path benchmark: throughput, cost against history size, peak memory and Dagster overhead.

One generated landing file of ``--rows`` transactions goes through the fraud path (contract, features
from the batch's accounts' stored state, scores, decisions, the five staged checks, publish with the
account-state update, DuckDB) three times per repeat, each time in a fresh process limited to one
BLAS/OpenMP thread: as a plain script calling the domain functions on a warehouse whose state
summarises ``--history-days`` of history, the same script on a warehouse whose state summarises
``--history-scale`` times as much, and as a Dagster run of the scoring assets on a SQLite instance.
They alternate so all see the same machine; ratios are medians of per-repeat ratios. A last process
times the features and the scoring (``score_features``, ``with_context``, ``make_decisions``) alone.
What each side counts is in ``benchmarks/README.md``.

Run: ``python -m benchmarks.fraud`` (1M rows) or ``--quick`` (100k rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from orchestration_pipelines.audit import AuditRecord
from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.fraud.account_state import (
    SOURCE_COLUMNS,
    features_from_state,
    load_state,
    update_account_state,
)
from orchestration_pipelines.fraud.contract import validate_transactions
from orchestration_pipelines.fraud.features import FEATURE_TABLE_CONTEXT
from orchestration_pipelines.fraud.generator import generate_transactions, make_population, unlabelled
from orchestration_pipelines.fraud.model import MODEL_NAME
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features, with_context
from orchestration_pipelines.fraud.tables import STAGING_TABLE
from orchestration_pipelines.fraud.validation import validate_staged_decisions
from orchestration_pipelines.landing import read_table_file
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.publish import publish_batch, read_staged, stage_rows
from orchestration_pipelines.settings import paths

REPO = Path(__file__).resolve().parents[1]
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
ACCOUNTS_PER_ROW = 1 / 20  # 30 days of history is then three times the batch
TRAIN_ACCOUNTS = 10_000  # the model learns from these accounts' history only, to keep training short
MEAN_DAILY_TRANSACTIONS = 2.0  # per account: the mean of the generator's gamma(2, 1) daily rate
BATCH_START = pd.Timestamp("2026-10-01", tz="UTC")  # history ends here, the batch begins
HISTORY_SCALE = 10  # the long history is this many times the labelled one
BATCH_FILE = "transactions_benchmark.parquet"  # the landing file and its partition key
PLAIN_RUN = "plain-script"  # the run id the plain script stages and publishes under
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
THROUGHPUT_TARGET_TPS = 100_000
HISTORY_GROWTH_TARGET = 0.20  # batch cost with the long history at most this much above the short
OVERHEAD_TARGET = 0.10
SCORING_TARGET_TPS = 200_000
SCORING_REPEATS = 5  # at least; the scoring target is judged on their median
# Plain-script stages and the Dagster steps doing the same work, in pipeline order.
STAGES = {
    "transactions": ("fraud__transactions", "read file, contract"),
    "features": ("fraud__features", "state read, features"),
    "scores": ("fraud__scores", "load model, score"),
    "decisions_staging": ("fraud__decisions_staging", "decide"),
    "checks": ("staged_decisions_checks", "five staged checks"),
    "decisions": ("fraud__decisions", "publish, state update"),
}


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MiB.

    Not ``getrusage().ru_maxrss``: Linux carries the parent's peak across fork and exec into it, so a
    child of the large set-up process would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not found in /proc/self/status")


class _Laps:
    """Seconds per stage, measured back to back, split into the stage's work and writing its table;
    and CPU seconds per stage (work and writing together)."""

    def __init__(self) -> None:
        self.work: dict[str, float] = {}
        self.write: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._last = time.perf_counter()
        self._last_cpu = time.process_time()

    def _elapsed(self, stage: str) -> float:
        now, last = time.perf_counter(), self._last
        cpu = time.process_time()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - self._last_cpu
        self._last, self._last_cpu = now, cpu
        return now - last

    def worked(self, stage: str) -> None:
        self.work[stage] = self._elapsed(stage)

    def wrote(self, stage: str) -> None:
        self.write[stage] = self._elapsed(stage)


def _write_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """A new table from the frame, as the warehouse I/O manager creates a partition's first table."""
    con.register("frame", frame)
    con.execute(f"CREATE TABLE fraud.{table} AS SELECT * FROM frame")
    con.unregister("frame")


def plain_script() -> dict:
    """The Dagster run's work as one script: the same files and functions, the same tables left behind.

    Frames pass from stage to stage in memory; each table is written once, and the staged decisions
    are checked in memory and published with the same function the run uses.
    """
    layout = paths()
    rss_before = _memory_mb("VmRSS")
    cpu_started = time.process_time()
    laps = _Laps()
    with duckdb.connect(str(layout.warehouse)) as con:
        batch = validate_transactions(read_table_file(layout.landing("fraud") / BATCH_FILE))
        batch.insert(0, "batch_id", BATCH_FILE)
        laps.worked("transactions")
        _write_table(con, "transactions", batch)
        laps.wrote("transactions")
        features = features_from_state(batch, load_state(con, batch), FEATURE_TABLE_CONTEXT)
        features.insert(0, "batch_id", BATCH_FILE)
        laps.worked("features")
        _write_table(con, "features", features)
        laps.wrote("features")
        model, card = ModelRegistry(layout.models).load(MODEL_NAME)
        policy = load_policy()
        scores = score_features(features, model, card["version"], policy)
        laps.worked("scores")
        _write_table(con, "scores", scores)
        laps.wrote("scores")
        decisions = make_decisions(with_context(batch, scores), policy)
        laps.worked("decisions_staging")
        stage_rows(con, STAGING_TABLE, decisions, BATCH_FILE, PLAIN_RUN)
        laps.wrote("decisions_staging")
        staged = read_staged(con, STAGING_TABLE, BATCH_FILE, PLAIN_RUN)
        outcomes = validate_staged_decisions(staged, policy)
        failed = [name for name, outcome in outcomes.items() if not outcome.passed]
        if failed:
            raise RuntimeError(f"staged checks failed: {failed}")
        laps.worked("checks")
        state_update: list[float] = []

        def timed_state_update(*args) -> None:
            started = time.perf_counter()
            update_account_state(*args)
            state_update.append(time.perf_counter() - started)

        publish_batch(
            con,
            staging=STAGING_TABLE,
            published="fraud.decisions",
            batch_id=BATCH_FILE,
            run_id=PLAIN_RUN,
            run_created_at=datetime.now(UTC),
            source_sha256=None,
            audit_record=lambda _, rows: AuditRecord(
                f"batch_published:{PLAIN_RUN}", "fraud", "batch_published", BATCH_FILE, {"rows": rows}
            ),
            in_transaction=[timed_state_update],
        )
    laps.worked("decisions")
    return {
        "seconds": sum(laps.work.values()) + sum(laps.write.values()),
        "cpu_seconds": time.process_time() - cpu_started,
        "state_update_seconds": state_update[0],
        "work": laps.work,
        "cpu": laps.cpu,
        "write": laps.write,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _memory_mb("VmHWM"),
    }


def _step_timings(records) -> dict[str, dict[str, float]]:
    """Per step, from event timestamps: loading inputs, computing, storing outputs, and the total."""
    marks: dict[str, dict[str, float]] = {}
    for record in records:
        if record.dagster_event is not None and record.step_key is not None:
            # The last STEP_INPUT ends the input loading, the last STEP_OUTPUT the computation.
            marks.setdefault(record.step_key, {})[record.dagster_event.event_type_value] = record.timestamp
    timings = {}
    for step, at in marks.items():
        if "STEP_SUCCESS" not in at:
            continue
        computing_from = at.get("STEP_INPUT", at["STEP_START"])
        computed_at = at.get("STEP_OUTPUT", at["STEP_SUCCESS"])
        timings[step] = {
            "load": computing_from - at["STEP_START"],
            "compute": computed_at - computing_from,
            "store": at["STEP_SUCCESS"] - computed_at,
            "total": at["STEP_SUCCESS"] - at["STEP_START"],
        }
    return timings


def _retries(records) -> list[str]:
    """``step: first line of the error`` for each failed attempt that the step's retry policy repeated."""
    retried = []
    for record in records:
        event = record.dagster_event
        if event is not None and event.event_type_value == "STEP_UP_FOR_RETRY":
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:  # the policy's error wraps the step's
                error = error.cause
            first_line = error.message.strip().partition("\n")[0] if error else "?"
            retried.append(f"{record.step_key}: {first_line}")
    return retried


def dagster_run() -> dict:
    """The scoring job's assets and checks materialised for the batch's partition on a SQLite instance."""
    # Imported here: the plain-script process must not build the Dagster definitions.
    from dagster import DagsterInstance, materialize

    from assets.fraud import FRAUD_SCORING_ASSETS, fraud_batches, staged_decisions_checks
    from orchestration_pipelines.definitions import build_resources

    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(fraud_batches.name, [BATCH_FILE])
        resources = build_resources()
        rss_before = _memory_mb("VmRSS")
        cpu_started, started = time.process_time(), time.perf_counter()
        result = materialize(
            [*FRAUD_SCORING_ASSETS, staged_decisions_checks],
            partition_key=BATCH_FILE,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        if not result.success:
            failures = [e.message for e in result.all_events if e.is_failure]
            raise RuntimeError(f"Dagster run {result.run_id} failed: {failures}")
        records = instance.all_logs(result.run_id)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "steps": _step_timings(records),
        "retries": _retries(records),
        "rss_before_mb": rss_before,
        "peak_rss_mb": _memory_mb("VmHWM"),
    }


def _timed(work) -> tuple[tuple[float, float], object]:
    """((wall seconds, CPU seconds), result) of ``work()``."""
    cpu_started, started = time.process_time(), time.perf_counter()
    result = work()
    return (time.perf_counter() - started, time.process_time() - cpu_started), result


def kernels(repeats: int) -> dict:
    """The state read, features alone and scoring alone (``score_features``, ``with_context`` and
    ``make_decisions``), each on its inputs already in memory, as the path calls them; scoring at least
    ``SCORING_REPEATS`` times."""
    layout = paths()
    batch = validate_transactions(read_table_file(layout.landing("fraud") / BATCH_FILE))
    model, card = ModelRegistry(layout.models).load(MODEL_NAME)
    policy = load_policy()
    timings: dict[str, list[tuple[float, float]]] = {"state read": [], "features": [], "scoring": []}
    for repeat in range(max(repeats, SCORING_REPEATS)):
        if repeat < repeats:
            with duckdb.connect(str(layout.warehouse), read_only=True) as con:
                took, state = _timed(lambda con=con: load_state(con, batch))
            timings["state read"].append(took)
            took, features = _timed(
                lambda state=state: features_from_state(batch, state, FEATURE_TABLE_CONTEXT)
            )
            timings["features"].append(took)
        took, _ = _timed(
            lambda features=features: make_decisions(
                with_context(batch, score_features(features, model, card["version"], policy)), policy
            )
        )
        timings["scoring"].append(took)
    return timings


@dataclass(frozen=True)
class Workload:
    """The generated data and model under ``root``, and what the report says about them."""

    root: Path
    rows: int
    accounts: int
    batch_days: int
    history_days: int
    history_rows: int
    history_scale: int
    backfill_seconds: float
    training_rows: int
    pr_auc: float

    @property
    def warehouse(self) -> Path:
        """``fraud.labelled_history`` and the account state built from it; every run starts from a copy."""
        return self.root / "warehouse.duckdb"

    @property
    def long_warehouse(self) -> Path:
        """The same, with ``history_scale`` times the history folded into the account state."""
        return self.root / "warehouse-long-history.duckdb"

    @property
    def long_history_rows(self) -> int:
        return self.history_rows * self.history_scale


def prepare(
    root: Path, rows: int, accounts: int, history_days: int, history_scale: int, seed: int
) -> Workload:
    """History and the landing file, the model trained and promoted, the history and its account state
    in the warehouse, and a copy whose state also holds ``history_scale - 1`` earlier months."""
    population = make_population(accounts, seed)
    history_start = BATCH_START - pd.Timedelta(days=history_days)
    history = generate_transactions(population, history_start, history_days, seed=seed, id_prefix="H")
    # A few more days than the mean rate needs, then the earliest ``rows`` transactions.
    batch_days = math.ceil(rows / (accounts * MEAN_DAILY_TRANSACTIONS) * 1.05)
    batch = generate_transactions(population, BATCH_START, batch_days, seed=seed + 1, id_prefix="T")
    batch = batch.head(rows)
    landing = root / "data" / "landing" / "fraud"
    landing.mkdir(parents=True)
    unlabelled(batch).to_parquet(landing / BATCH_FILE, index=False)
    history_dir = root / "data" / "history" / "fraud"
    history_dir.mkdir(parents=True)
    history.to_parquet(history_dir / "history.parquet", index=False)

    training = history[history["account_id"].isin(population.account_id[:TRAIN_ACCOUNTS])]
    result = train_builtin(training)
    registry = ModelRegistry(root / "models")
    card = {"feature_set": "builtin", "split": result.split, "metrics": result.metrics, "baseline": None}
    registry.promote(MODEL_NAME, registry.save(MODEL_NAME, result.model, card))
    workload = Workload(
        root=root,
        rows=len(batch),
        accounts=accounts,
        batch_days=batch_days,
        history_days=history_days,
        history_rows=len(history),
        history_scale=history_scale,
        backfill_seconds=0.0,
        training_rows=len(training),
        pr_auc=result.metrics["pr_auc"],
    )
    _load_history_and_state(root, workload.warehouse)
    shutil.copyfile(workload.warehouse, workload.long_warehouse)
    started = time.perf_counter()
    _fold_earlier_months(workload.long_warehouse, history, history_days, history_scale)
    return replace(workload, backfill_seconds=time.perf_counter() - started)


def _load_history_and_state(root: Path, warehouse: Path) -> None:
    """``fraud.labelled_history`` and ``fraud.account_state`` written by their own assets, as production
    holds them."""
    from dagster import DagsterInstance, materialize
    from dagster_duckdb import DuckDBResource
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    from resources.landing import LandingZoneResource
    from resources.models import FraudPolicyResource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preview-feature warnings of the asset definitions
        from assets.fraud import account_state, labelled_history

    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [labelled_history, account_state],
            resources={
                "landing": LandingZoneResource(root=str(root / "data")),
                "fraud_policy": FraudPolicyResource(path=""),
                "warehouse_io_manager": DuckDBPandasIOManager(database=str(warehouse)),
                "warehouse": DuckDBResource(database=str(warehouse)),
            },
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    if not result.success:
        raise RuntimeError("loading the labelled history and its account state into the warehouse failed")


def _fold_earlier_months(warehouse: Path, history: pd.DataFrame, history_days: int, scale: int) -> None:
    """Fold ``scale - 1`` earlier periods into the account state, each as one published batch.

    Generating 27 million more rows would take longer than the rest of the benchmark, so each earlier
    period is the generated history shifted back by whole periods, with its own transaction ids. It
    goes through the publish path's own code: staged under a batch and run id, then
    ``update_account_state`` in a transaction, as the publish step calls it.
    """
    months = history[list(SOURCE_COLUMNS)]
    with duckdb.connect(str(warehouse)) as con:
        for back in range(1, scale):
            month = months.assign(
                transaction_id=f"P{back}-" + months["transaction_id"],
                timestamp=months["timestamp"] - pd.Timedelta(days=back * history_days),
                batch_id=f"earlier-history-{back}",
                run_id="backfill",
            )
            con.register("month", month)
            con.execute(f"CREATE TABLE IF NOT EXISTS {STAGING_TABLE} AS SELECT * FROM month LIMIT 0")
            con.execute(f"INSERT INTO {STAGING_TABLE} SELECT * FROM month")
            con.unregister("month")
            con.execute("BEGIN TRANSACTION")
            update_account_state(con, f"earlier-history-{back}", "backfill")
            con.execute(f"DELETE FROM {STAGING_TABLE}")
            con.execute("COMMIT")
        con.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
        con.execute("CHECKPOINT")


def _measure(kind: str, workload: Workload, run_dir: Path, warehouse: Path, repeats: int = 1) -> dict:
    """One measurement in a fresh process, on its own copy of ``warehouse`` and its own Dagster home."""
    dagster_home = run_dir / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    shutil.copyfile(warehouse, run_dir / "warehouse.duckdb")
    env = {name: value for name, value in os.environ.items() if name != "OP_FRAUD_POLICY_PATH"}
    env.update(
        ONE_CORE,
        OP_DATA_DIR=str(workload.root / "data"),
        OP_MODEL_DIR=str(workload.root / "models"),
        OP_WAREHOUSE_PATH=str(run_dir / "warehouse.duckdb"),
        OP_OPSTORE_URL=f"sqlite:///{run_dir / 'opstore.sqlite'}",
        DAGSTER_HOME=str(dagster_home),
    )
    log = run_dir / "stderr.log"
    with log.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.fraud", "--child", kind, "--repeats", str(repeats)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            check=False,
        )
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise RuntimeError(f"the {kind} process failed with exit code {done.returncode}:\n{tail}")
    return json.loads(done.stdout.splitlines()[-1])


def _count_same_tables(plain: Path, dagster: Path) -> int:
    """Rows of ``fraud.decisions``, after checking that both paths left the same rows in the same tables.

    Rows of the per-transaction tables are matched on ``transaction_id``; ``decided_at`` (the clock) and
    ``run_id`` are left out, and floating-point columns may differ by one part in a million (DuckDB
    sums in no fixed order). The account state must summarise the same transactions of the same
    accounts on both sides.
    """
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{plain}' AS plain (READ_ONLY)")
        con.execute(f"ATTACH '{dagster}' AS dagster (READ_ONLY)")
        schemas = [
            con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
                "AND schema_name = 'fraud' AND table_name IN "
                "('transactions', 'features', 'scores', 'decisions_staging', 'decisions') "
                "ORDER BY table_name, column_index",
                [db],
            ).fetchall()
            for db in ("plain", "dagster")
        ]
        if schemas[0] != schemas[1]:
            raise RuntimeError(f"the two paths wrote different tables or columns: {schemas}")
        mismatches = {}
        for table in sorted({table for table, _, _ in schemas[0]}):
            differs = " OR ".join(
                f'abs(p."{column}" - d."{column}") > 1e-6 * greatest(1, abs(p."{column}"))'
                if kind == "DOUBLE"
                else f'p."{column}" IS DISTINCT FROM d."{column}"'
                for name, column, kind in schemas[0]
                if name == table and column not in ("transaction_id", "decided_at", "run_id", "staged_at")
            )
            # Rows on one side only, plus matched rows that differ.
            mismatches[table] = con.execute(
                f"SELECT (SELECT count(*) FROM plain.fraud.{table}) "
                f"+ (SELECT count(*) FROM dagster.fraud.{table}) - 2 * count(*) "
                f"+ count(*) FILTER (WHERE {differs}) "
                f"FROM plain.fraud.{table} p JOIN dagster.fraud.{table} d USING (transaction_id)"
            ).fetchall()[0][0]
        rows = con.execute("SELECT count(*) FROM plain.fraud.decisions").fetchall()[0][0]
        state = [
            con.execute(f"SELECT count(*), sum(tx_count) FROM {db}.fraud.account_state").fetchall()
            for db in ("plain", "dagster")
        ]
        if state[0] != state[1]:
            mismatches["account_state (accounts, transactions)"] = state
    if any(mismatches.values()):
        raise RuntimeError(f"rows missing on one side or different, by table: {mismatches}")
    return rows


def _median(values) -> float:
    return statistics.median(list(values))


def _plain_stage(run: dict, stage: str) -> float:
    return run["work"][stage] + run["write"].get(stage, 0.0)


def _spread(values) -> str:
    values = list(values)
    return f"{min(values):.2f}-{max(values):.2f}"


def report(
    workload: Workload,
    runs: dict[str, list[dict]],
    kernel: dict,
    checked_rows: int,
    quick: bool,
) -> bool:
    """Print the figures and a PASS/MISS line per target; True when every applicable target is met."""
    rows = workload.rows
    plain, long_plain, dagster = runs["plain"], runs["plain, long history"], runs["Dagster"]
    overhead_ratios = [d["seconds"] / p["seconds"] for p, d in zip(plain, dagster, strict=True)]
    growth_ratios = [long["seconds"] / p["seconds"] for p, long in zip(plain, long_plain, strict=True)]
    overhead, growth = _median(overhead_ratios) - 1, _median(growth_ratios) - 1
    plain_s, dagster_s = _median(p["seconds"] for p in plain), _median(d["seconds"] for d in dagster)
    scoring_s = _median(wall for wall, _ in kernel["scoring"])
    path_tps, scoring_tps = rows / plain_s, rows / scoring_s

    print(f"Fraud path benchmark: {rows:,} transactions in one landing file (Parquet)")
    print(
        f"  data: {workload.accounts:,} accounts, batch spanning {workload.batch_days} days; "
        f"{workload.history_days} days of labelled history = {workload.history_rows:,} rows in "
        f"fraud.labelled_history and its account state; model trained on {workload.training_rows:,} "
        f"of them (PR-AUC {workload.pr_auc:.3f})"
    )
    print(
        f"  long history: the account state of {workload.long_history_rows:,} rows "
        f"({workload.history_scale} x the history, the earlier periods folded in one at a time by "
        f"update_account_state, {workload.backfill_seconds:.0f} s)"
    )
    print(
        f"  one core (OMP/OPENBLAS/MKL_NUM_THREADS=1), each measurement in a fresh process; {len(plain)} "
        "repeats, the three runs alternating; medians, and the spread (min-max) over repeats"
    )
    print(
        f"  plain and Dagster left the same tables: fraud.transactions, features, scores, "
        f"decisions_staging and decisions, {checked_rows:,} rows each, and the same account state"
    )
    print()
    print(
        f"  {'measurement':<32} {'seconds':>8} {'spread':>11} {'CPU s':>7} {'tx/s':>9} {'peak RSS MB':>12} "
        f"{'after imports':>14}"
    )
    for name, runs_of_kind in (
        (f"plain script, {workload.history_rows:,} rows", plain),
        (f"plain script, {workload.long_history_rows:,} rows", long_plain),
        ("Dagster run", dagster),
    ):
        seconds = _median(r["seconds"] for r in runs_of_kind)
        cpu = _median(r["cpu_seconds"] for r in runs_of_kind)
        peak = _median(r["peak_rss_mb"] for r in runs_of_kind)
        before = _median(r["rss_before_mb"] for r in runs_of_kind)
        print(
            f"  {name:<32} {seconds:>8.2f} {_spread(r['seconds'] for r in runs_of_kind):>11} {cpu:>7.2f} "
            f"{rows / seconds:>9,.0f} {peak:>12,.0f} {before:>14,.0f}"
        )
    for name, kind in (
        ("state read only", "state read"),
        ("features only (from state)", "features"),
        (f"scoring only, {len(kernel['scoring'])} repeats", "scoring"),
    ):
        wall, cpu = _median(w for w, _ in kernel[kind]), _median(c for _, c in kernel[kind])
        spread = _spread(w for w, _ in kernel[kind])
        print(f"  {name:<32} {wall:>8.2f} {spread:>11} {cpu:>7.2f} {rows / wall:>9,.0f}")
    print()
    print(
        f"  Dagster / plain: {1 + overhead:.3f} (overhead {overhead:+.1%}); per repeat: "
        + ", ".join(f"{r:.3f}" for r in overhead_ratios)
    )
    print(
        f"  {workload.history_scale} x history / 1 x history (plain): {1 + growth:.3f}; per repeat: "
        + ", ".join(f"{r:.3f}" for r in growth_ratios)
    )
    print()

    print("  where the time goes (medians, seconds; Dagster steps split at their event timestamps)")
    print(
        f"  {'stage':<18} {'work':<25} {'plain':>6} {'writing':>8} {'CPU s':>6} {'Dagster':>8} "
        f"{'load in':>8} {'compute':>8} {'store out':>9}"
    )
    for stage, (step, work) in STAGES.items():
        plain_total = _median(_plain_stage(p, stage) for p in plain)
        writing = _median(p["write"].get(stage, 0.0) for p in plain)
        cpu = _median(p["cpu"][stage] for p in plain)
        timings = [d["steps"][step] for d in dagster]
        parts = (_median(t[part] for t in timings) for part in ("total", "load", "compute", "store"))
        print(
            f"  {stage:<18} {work:<25} {plain_total:>6.2f} {writing:>8.2f} {cpu:>6.2f} "
            + " ".join(f"{value:>{width}.2f}" for value, width in zip(parts, (8, 8, 8, 9), strict=True))
        )
    outside = [d["seconds"] - sum(t["total"] for t in d["steps"].values()) for d in dagster]
    print(f"  {'outside steps':<18} {'run set-up, event log':<25} {'':>22} {_median(outside):>8.2f}")
    plain_cpu = _median(p["cpu_seconds"] for p in plain)
    print(f"  {'total':<18} {'':<25} {plain_s:>6.2f} {'':>8} {plain_cpu:>6.2f} {dagster_s:>8.2f}")
    print(
        "  of the publish, the account-state update took "
        f"{_median(p['state_update_seconds'] for p in plain):.2f} s "
        f"({_median(p['state_update_seconds'] for p in long_plain):.2f} s with the long history)"
    )

    def more_than_plain(part: str, plain_part: str | None = None) -> float:
        """Median over repeats of a Dagster part summed over steps, less the plain script's counterpart."""
        return _median(
            sum(t[part] for t in d["steps"].values()) - (sum(p[plain_part].values()) if plain_part else 0.0)
            for p, d in zip(plain, dagster, strict=True)
        )

    print(
        f"  Dagster - plain = {dagster_s - plain_s:+.2f} s: receiving inputs "
        f"{more_than_plain('load'):+.2f} s, storing tables {more_than_plain('store', 'write'):+.2f} s, "
        f"steps' work {more_than_plain('compute', 'work'):+.2f} s, outside steps {_median(outside):+.2f} s"
    )
    retried = [d["retries"] for d in dagster if d["retries"]]
    if retried:
        print(
            f"  ! {len(retried)} of {len(dagster)} Dagster runs retried a failed step; the failed attempts "
            "and retry delays are inside their timings:"
        )
        for attempt in sorted({attempt for retries in retried for attempt in retries}):
            print(f"    {attempt}")
    print()

    scope = f"at {rows:,} rows" + (" (--quick: this target applies to a full run)" if quick else "")
    verdicts = [
        (
            path_tps >= THROUGHPUT_TARGET_TPS,
            f"whole path (plain script) {path_tps:,.0f} transactions/s on one core "
            f"(target >= {THROUGHPUT_TARGET_TPS:,}) {scope}",
            quick,
        ),
        (
            growth < HISTORY_GROWTH_TARGET,
            f"batch cost with {workload.history_scale} x history {growth:+.1%} "
            f"(target < {HISTORY_GROWTH_TARGET:+.0%}) {scope}",
            quick,
        ),
        (
            overhead < OVERHEAD_TARGET,
            f"Dagster overhead {overhead:+.1%} (target < {OVERHEAD_TARGET:.0%}) {scope}",
            quick,
        ),
        (
            scoring_tps >= SCORING_TARGET_TPS,
            f"scoring {scoring_tps:,.0f} transactions/s on one core, median of {len(kernel['scoring'])} "
            f"(target >= {SCORING_TARGET_TPS:,})",
            False,
        ),
    ]
    for met, line, informative in verdicts:
        print(f"  {'INFO' if informative else 'PASS' if met else 'MISS'}  {line}")
    return all(met or informative for met, _, informative in verdicts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"transactions in the batch (default {FULL_ROWS:,})")
    parser.add_argument("--accounts", type=int, help="accounts behind the batch (default rows / 20)")
    parser.add_argument("--history-days", type=int, default=30, help="days of labelled history")
    parser.add_argument(
        "--history-scale", type=int, default=HISTORY_SCALE, help="the long history is this many times longer"
    )
    parser.add_argument("--repeats", type=int, help="measurements per path (default 3, 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run on {QUICK_ROWS:,} rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=("plain", "dagster", "kernels"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "plain":
            outcome = plain_script()
        elif args.child == "dagster":
            outcome = dagster_run()
        else:
            outcome = kernels(args.repeats)
        print(json.dumps(outcome))
        return 0

    started = time.perf_counter()
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (2 if args.quick else 3)
    if rows < 1 or repeats < 1 or args.history_scale < 1:
        parser.error("--rows, --repeats and --history-scale must be at least 1")
    accounts = args.accounts or max(round(rows * ACCOUNTS_PER_ROW), 1)
    with tempfile.TemporaryDirectory(prefix="fraud-benchmark-") as tmp:
        root = Path(tmp)
        print(f"preparing {rows:,} transactions of {accounts:,} accounts and their history ...", flush=True)
        workload = prepare(root, rows, accounts, args.history_days, args.history_scale, args.seed)
        runs: dict[str, list[dict]] = {"plain": [], "Dagster": [], "plain, long history": []}
        for repeat in range(repeats):
            dirs = {kind: root / f"{kind.replace(', ', '-').replace(' ', '-')}-{repeat}" for kind in runs}
            for kind, run_dir in dirs.items():
                child = "dagster" if kind == "Dagster" else "plain"
                warehouse = workload.long_warehouse if "long" in kind else workload.warehouse
                runs[kind].append(_measure(child, workload, run_dir, warehouse))
            if repeat == 0:
                checked_rows = _count_same_tables(
                    dirs["plain"] / "warehouse.duckdb", dirs["Dagster"] / "warehouse.duckdb"
                )
            for run_dir in dirs.values():
                shutil.rmtree(run_dir)
            print(
                f"repeat {repeat + 1}/{repeats}: "
                + ", ".join(f"{kind} {measured[-1]['seconds']:.2f} s" for kind, measured in runs.items()),
                flush=True,
            )
        kernel = _measure("kernels", workload, root / "kernels", workload.warehouse, repeats)
    print()
    met = report(workload, runs, kernel, checked_rows, args.quick)
    print(f"  {'all targets met' if met else 'targets NOT met'}; {time.perf_counter() - started:.0f} s")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
