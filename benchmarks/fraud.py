"""Fraud path benchmark: throughput, peak memory and Dagster overhead on one large landing file.

One generated landing file of ``--rows`` transactions goes through the fraud path (contract, features
with the 30-day account history from the warehouse, scores, decisions, the five staged checks, DuckDB)
twice per repeat, each time in a fresh process limited to one BLAS/OpenMP thread: as a plain script
calling the domain functions, and as a Dagster run of the scoring assets on a SQLite instance. The two
alternate so both see the same machine; the overhead is the median of the per-repeat ratios. A third
process times the features and the scoring (``score_features`` + ``make_decisions``) alone. What each
side counts is in ``benchmarks/README.md``.

Run: ``python -m benchmarks.fraud`` (1M rows, about 5 minutes on 2 cores) or ``--quick`` (100k rows).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from orchestration_pipelines.audit import AuditRecord
from orchestration_pipelines.fraud import train_builtin
from orchestration_pipelines.fraud.contract import validate_transactions
from orchestration_pipelines.fraud.features import compute_features
from orchestration_pipelines.fraud.generator import generate_transactions, make_population, unlabelled
from orchestration_pipelines.fraud.history import account_history
from orchestration_pipelines.fraud.model import MODEL_NAME
from orchestration_pipelines.fraud.policy import load_policy
from orchestration_pipelines.fraud.scoring import make_decisions, score_features
from orchestration_pipelines.fraud.validation import validate_staged_decisions, with_account_columns
from orchestration_pipelines.landing import read_table_file
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.publish import publish_batch, read_staged, stage_rows
from orchestration_pipelines.settings import paths

REPO = Path(__file__).resolve().parents[1]
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
ACCOUNTS_PER_ROW = 1 / 20  # a 30-day history three times the batch: the look-back stays affordable
TRAIN_ACCOUNTS = 10_000  # the model learns from these accounts' history only, to keep training short
MEAN_DAILY_TRANSACTIONS = 2.0  # per account: the mean of the generator's gamma(2, 1) daily rate
HISTORY_START = pd.Timestamp("2026-09-01", tz="UTC")
BATCH_FILE = "transactions_benchmark.parquet"  # the landing file and its partition key
PLAIN_RUN = "plain-script"  # the run id the plain script stages and publishes under
ONE_CORE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
OVERHEAD_TARGET = 0.15
SCORING_TARGET_TPS = 200_000
# Plain-script stages and the Dagster steps doing the same work, in pipeline order.
STAGES = {
    "transactions": ("fraud__transactions", "read file, contract"),
    "features": ("fraud__features", "history query, features"),
    "scores": ("fraud__scores", "load model, score"),
    "decisions_staging": ("fraud__decisions_staging", "decide"),
    "checks": ("staged_decisions_checks", "five staged checks"),
    "decisions": ("fraud__decisions", "publish"),
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
    """Seconds per stage, measured back to back, split into the stage's work and writing its table."""

    def __init__(self) -> None:
        self.work: dict[str, float] = {}
        self.write: dict[str, float] = {}
        self._last = time.perf_counter()

    def _elapsed(self) -> float:
        now, last = time.perf_counter(), self._last
        self._last = now
        return now - last

    def worked(self, stage: str) -> None:
        self.work[stage] = self._elapsed()

    def wrote(self, stage: str) -> None:
        self.write[stage] = self._elapsed()


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
        features = compute_features(batch, account_history(con, batch))
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
        decisions = with_account_columns(make_decisions(scores, policy), batch)
        laps.worked("decisions_staging")
        stage_rows(con, "fraud.decisions_staging", decisions, BATCH_FILE, PLAIN_RUN)
        laps.wrote("decisions_staging")
        staged = read_staged(con, "fraud.decisions_staging", BATCH_FILE, PLAIN_RUN)
        outcomes = validate_staged_decisions(staged, policy)
        failed = [name for name, outcome in outcomes.items() if not outcome.passed]
        if failed:
            raise RuntimeError(f"staged checks failed: {failed}")
        laps.worked("checks")
        publish_batch(
            con,
            staging="fraud.decisions_staging",
            published="fraud.decisions",
            batch_id=BATCH_FILE,
            run_id=PLAIN_RUN,
            run_created_at=datetime.now(UTC),
            source_sha256=None,
            audit_record=lambda _, rows: AuditRecord(
                f"batch_published:{PLAIN_RUN}", "fraud", "batch_published", BATCH_FILE, {"rows": rows}
            ),
        )
    laps.worked("decisions")
    return {
        "seconds": sum(laps.work.values()) + sum(laps.write.values()),
        "cpu_seconds": time.process_time() - cpu_started,
        "work": laps.work,
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


def kernels(repeats: int) -> dict:
    """Features alone and scoring alone (``score_features`` + ``make_decisions``) on data in memory."""
    layout = paths()
    batch = validate_transactions(read_table_file(layout.landing("fraud") / BATCH_FILE))
    with duckdb.connect(str(layout.warehouse)) as con:
        history = account_history(con, batch)
    model, card = ModelRegistry(layout.models).load(MODEL_NAME)
    policy = load_policy()
    timings: dict[str, list[tuple[float, float]]] = {"features": [], "scoring": []}
    for _ in range(repeats):
        cpu_started, started = time.process_time(), time.perf_counter()
        features = compute_features(batch, history)
        timings["features"].append((time.perf_counter() - started, time.process_time() - cpu_started))
        cpu_started, started = time.process_time(), time.perf_counter()
        make_decisions(score_features(features, model, card["version"], policy), policy)
        timings["scoring"].append((time.perf_counter() - started, time.process_time() - cpu_started))
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
    training_rows: int
    pr_auc: float

    @property
    def warehouse(self) -> Path:
        """The warehouse holding only ``fraud.labelled_history``; every run starts from a copy."""
        return self.root / "warehouse.duckdb"


def prepare(root: Path, rows: int, accounts: int, history_days: int, seed: int) -> Workload:
    """History and the landing file, the model trained and promoted, the history loaded into DuckDB."""
    population = make_population(accounts, seed)
    history = generate_transactions(population, HISTORY_START, history_days, seed=seed, id_prefix="H")
    # A few more days than the mean rate needs, then the earliest ``rows`` transactions.
    batch_days = math.ceil(rows / (accounts * MEAN_DAILY_TRANSACTIONS) * 1.05)
    batch_start = HISTORY_START + pd.Timedelta(days=history_days)
    batch = generate_transactions(population, batch_start, batch_days, seed=seed + 1, id_prefix="T")
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
    _load_history(root)
    return Workload(
        root=root,
        rows=len(batch),
        accounts=accounts,
        batch_days=batch_days,
        history_days=history_days,
        history_rows=len(history),
        training_rows=len(training),
        pr_auc=result.metrics["pr_auc"],
    )


def _load_history(root: Path) -> None:
    """``fraud.labelled_history`` written by its own asset, so both paths query what production holds."""
    from dagster import DagsterInstance, materialize
    from dagster_duckdb_pandas import DuckDBPandasIOManager

    from resources.landing import LandingZoneResource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preview-feature warnings of the asset definitions
        from assets.fraud import labelled_history

    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [labelled_history],
            resources={
                "landing": LandingZoneResource(root=str(root / "data")),
                "warehouse_io_manager": DuckDBPandasIOManager(database=str(root / "warehouse.duckdb")),
            },
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    if not result.success:
        raise RuntimeError("loading the labelled history into the warehouse failed")


def _measure(kind: str, workload: Workload, run_dir: Path, repeats: int = 1) -> dict:
    """One measurement in a fresh process, on its own copy of the warehouse and its own Dagster home."""
    dagster_home = run_dir / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    shutil.copyfile(workload.warehouse, run_dir / "warehouse.duckdb")
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

    Rows are matched on ``transaction_id``. ``decided_at`` (the clock) and the run that staged them are
    left out, and floating-point
    columns may differ by one part in a million: the features sum amounts in the order the history
    query returns rows, which DuckDB does not fix, so even two plain runs differ in the last digits.
    """
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{plain}' AS plain (READ_ONLY)")
        con.execute(f"ATTACH '{dagster}' AS dagster (READ_ONLY)")
        schemas = [
            con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND "
                "schema_name = 'fraud' AND table_name NOT IN ('labelled_history', 'decisions_publications') "
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
            ).fetchone()[0]
        rows = con.execute("SELECT count(*) FROM plain.fraud.decisions").fetchone()[0]
    if any(mismatches.values()):
        raise RuntimeError(f"rows missing on one side or different, by table: {mismatches}")
    return rows


def _median(values) -> float:
    return statistics.median(list(values))


def _plain_stage(run: dict, stage: str) -> float:
    return run["work"][stage] + run["write"].get(stage, 0.0)


def report(
    workload: Workload, plain: list[dict], dagster: list[dict], kernel: dict, checked_rows: int, quick: bool
) -> bool:
    """Print the figures and a PASS/MISS line per target; True when every applicable target is met."""
    rows = workload.rows
    pairs = list(zip(plain, dagster, strict=True))
    ratios = [d["seconds"] / p["seconds"] for p, d in pairs]
    overhead = _median(ratios) - 1
    plain_s, dagster_s = _median(p["seconds"] for p in plain), _median(d["seconds"] for d in dagster)
    scoring_s = _median(wall for wall, _ in kernel["scoring"])
    scoring_tps = rows / scoring_s

    print(f"Fraud path benchmark: {rows:,} transactions in one landing file (Parquet)")
    print(
        f"  data: {workload.accounts:,} accounts, batch spanning {workload.batch_days} days; "
        f"{workload.history_days} days of labelled history = {workload.history_rows:,} rows in "
        f"fraud.labelled_history; model trained on {workload.training_rows:,} of them "
        f"(PR-AUC {workload.pr_auc:.3f})"
    )
    print(
        f"  one core (OMP/OPENBLAS/MKL_NUM_THREADS=1), each measurement in a fresh process; {len(plain)} "
        f"repeats, plain and Dagster alternating; medians"
    )
    print(
        f"  both paths left the same tables: fraud.transactions, features, scores, decisions_staging and "
        f"decisions, {checked_rows:,} rows each (decided_at aside)"
    )
    print()
    print(
        f"  {'measurement':<30} {'seconds':>8} {'CPU s':>7} {'tx/s':>9} {'peak RSS MB':>12} "
        f"{'after imports':>14}"
    )
    for name, seconds, runs in (("plain script", plain_s, plain), ("Dagster run", dagster_s, dagster)):
        cpu = _median(r["cpu_seconds"] for r in runs)
        peak, before = _median(r["peak_rss_mb"] for r in runs), _median(r["rss_before_mb"] for r in runs)
        print(
            f"  {name:<30} {seconds:>8.2f} {cpu:>7.2f} {rows / seconds:>9,.0f} "
            f"{peak:>12,.0f} {before:>14,.0f}"
        )
    for name, kind in (("features only", "features"), ("scoring only (score + decide)", "scoring")):
        wall, cpu = _median(w for w, _ in kernel[kind]), _median(c for _, c in kernel[kind])
        print(f"  {name:<30} {wall:>8.2f} {cpu:>7.2f} {rows / wall:>9,.0f}")
    print()
    print(
        f"  Dagster / plain: {1 + overhead:.3f} (overhead {overhead:+.1%}); per repeat: "
        + ", ".join(f"{r:.3f}" for r in ratios)
    )
    print()

    print("  where the time goes (medians, seconds; Dagster steps split at their event timestamps)")
    print(
        f"  {'stage':<18} {'work':<25} {'plain':>6} {'writing':>8} {'Dagster':>8} {'load in':>8} "
        f"{'compute':>8} {'store out':>9}"
    )
    for stage, (step, work) in STAGES.items():
        plain_total = _median(_plain_stage(p, stage) for p in plain)
        writing = _median(p["write"].get(stage, 0.0) for p in plain)
        timings = [d["steps"][step] for d in dagster]
        parts = (_median(t[part] for t in timings) for part in ("total", "load", "compute", "store"))
        print(
            f"  {stage:<18} {work:<25} {plain_total:>6.2f} {writing:>8.2f} "
            + " ".join(f"{value:>{width}.2f}" for value, width in zip(parts, (8, 8, 8, 9), strict=True))
        )
    outside = [d["seconds"] - sum(t["total"] for t in d["steps"].values()) for d in dagster]
    print(f"  {'outside steps':<18} {'run set-up, event log':<25} {'':>6} {'':>8} {_median(outside):>8.2f}")
    print(f"  {'total':<18} {'':<25} {plain_s:>6.2f} {'':>8} {dagster_s:>8.2f}")

    def more_than_plain(part: str, plain_part: str | None = None) -> float:
        """Median over repeats of a Dagster part summed over steps, less the plain script's counterpart."""
        return _median(
            sum(t[part] for t in d["steps"].values()) - (sum(p[plain_part].values()) if plain_part else 0.0)
            for p, d in pairs
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

    overhead_met = overhead < OVERHEAD_TARGET
    if quick:
        verdict = "INFO"
        scope = f"at {rows:,} rows (--quick: the target applies to a full run)"
    else:
        verdict = "PASS" if overhead_met else "MISS"
        scope = f"at {rows:,} rows"
    print(f"  {verdict}  Dagster overhead {overhead:+.1%} (target < {OVERHEAD_TARGET:.0%}) {scope}")
    scoring_met = scoring_tps >= SCORING_TARGET_TPS
    print(
        f"  {'PASS' if scoring_met else 'MISS'}  scoring {scoring_tps:,.0f} transactions/s on one core "
        f"(target >= {SCORING_TARGET_TPS:,})"
    )
    return scoring_met and (overhead_met or quick)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"transactions in the batch (default {FULL_ROWS:,})")
    parser.add_argument("--accounts", type=int, help="accounts behind the batch (default rows / 20)")
    parser.add_argument("--history-days", type=int, default=30, help="days of labelled history")
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
    if rows < 1 or repeats < 1:
        parser.error("--rows and --repeats must be at least 1")
    accounts = args.accounts or max(round(rows * ACCOUNTS_PER_ROW), 1)
    with tempfile.TemporaryDirectory(prefix="fraud-benchmark-") as tmp:
        root = Path(tmp)
        print(f"preparing {rows:,} transactions of {accounts:,} accounts and their history ...", flush=True)
        workload = prepare(root, rows, accounts, args.history_days, args.seed)
        plain, dagster = [], []
        for repeat in range(repeats):
            plain_dir, dagster_dir = root / f"plain-{repeat}", root / f"dagster-{repeat}"
            plain.append(_measure("plain", workload, plain_dir))
            dagster.append(_measure("dagster", workload, dagster_dir))
            if repeat == 0:
                checked_rows = _count_same_tables(
                    plain_dir / "warehouse.duckdb", dagster_dir / "warehouse.duckdb"
                )
            shutil.rmtree(plain_dir)
            shutil.rmtree(dagster_dir)
            print(
                f"repeat {repeat + 1}/{repeats}: plain {plain[-1]['seconds']:.2f} s, "
                f"Dagster {dagster[-1]['seconds']:.2f} s",
                flush=True,
            )
        kernel = _measure("kernels", workload, root / "kernels", repeats)
    print()
    met = report(workload, plain, dagster, kernel, checked_rows, args.quick)
    print(f"  {'all targets met' if met else 'targets NOT met'}; {time.perf_counter() - started:.0f} s")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
