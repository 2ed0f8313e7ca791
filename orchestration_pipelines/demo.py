"""The end-to-end demo behind ``make demo``: fraud, support and a maintenance day, run through the Dagster
instance, then a summary of each.

Every run is submitted to the instance in ``DAGSTER_HOME`` and started by its run launcher in a process
of its own, as the landing sensor's runs are, so the runs appear in the UI's Overview timeline. The demo
launches them directly instead of waiting for the daemon's queue and sensor ticks, so no daemon is
needed and the demo stays quick; the landing sensor later finds these batches published (or
quarantined) and does not score them again.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget

from assets.fraud import LANDING_SHA_TAG, WORKFLOW, fraud_batches
from assets.fraud_lifecycle import plan_batches
from assets.support import LANDING_SHA_TAG as SUPPORT_LANDING_SHA_TAG
from assets.support import WORKFLOW as SUPPORT
from assets.support import already_ingested as support_already_ingested
from assets.support import support_batches
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.batch_lifecycle import BatchState
from orchestration_pipelines.definitions import build_definitions
from orchestration_pipelines.fraud.generator import write_demo_files
from orchestration_pipelines.landing import LandedFile, scan_landing
from orchestration_pipelines.maintenance.alerts import HUMAN_REVIEW, SUPPRESSED, WORK_ORDER
from orchestration_pipelines.maintenance.generator import write_demo_files as write_maintenance_demo_files
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.review import list_items
from orchestration_pipelines.settings import default_opstore_url, paths
from orchestration_pipelines.support.generator import write_demo_files as write_support_files

CODE_LOCATION = "orchestration_pipelines"  # as in workspace.yaml, so the UI ties the runs to it
RUN_TIMEOUT_SECONDS = 600
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the UI keeps the full logs


@contextmanager
def launching_instance() -> Iterator[tuple[DagsterInstance, BaseWorkspaceRequestContext]]:
    """The instance in ``DAGSTER_HOME``, launching submitted runs at once, and the loaded code location."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit(
            "DAGSTER_HOME is not set: run `make demo`, or point it at a folder with a dagster.yaml"
        )
    immediate = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    ref = InstanceRef.from_dir(home, overrides={"run_coordinator": immediate})
    target = ModuleTarget("orchestration_pipelines.definitions", None, None, CODE_LOCATION)
    with (
        DagsterInstance.from_ref(ref) as instance,
        WorkspaceProcessContext(instance, target, code_server_log_level="WARNING") as process,
    ):
        yield instance, process.create_request_context()


def submit(
    instance: DagsterInstance, workspace: BaseWorkspaceRequestContext, job_name: str, tags: dict | None = None
) -> str:
    """Create a run of ``job_name`` and hand it to the instance's run launcher; returns its id."""
    [repository] = workspace.get_code_location(CODE_LOCATION).get_repositories().values()
    remote_job = repository.get_full_job(job_name)
    run = instance.create_run_for_job(
        build_definitions().resolve_job_def(job_name),
        run_config=QUIET,
        tags=tags,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
    )
    return instance.submit_run(run.run_id, workspace).run_id


def wait_for_runs(instance: DagsterInstance, run_ids: list[str]) -> dict[str, DagsterRunStatus]:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        statuses = {run_id: instance.get_run_by_id(run_id).status for run_id in run_ids}
        if all(status in FINISHED_STATUSES for status in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise SystemExit(f"runs still not finished after {RUN_TIMEOUT_SECONDS} s: {statuses}")
        time.sleep(1)


def run_demo(n_accounts: int = 5000, with_bad_file: bool = False, support_batch_size: int = 200) -> None:
    """Fraud, then support, then a maintenance day, through one instance and one loaded code location."""
    with launching_instance() as (instance, workspace):
        print(f"Dagster instance: {instance.root_directory}\nData: {paths().data_dir}")
        run_fraud_demo(instance, workspace, n_accounts, with_bad_file)
        run_support_demo(instance, workspace, support_batch_size)
        maintenance_day, maintenance_run = run_maintenance_demo(instance, workspace)
    print_maintenance_summary(maintenance_day, maintenance_run)
    print_review_inbox_summary()
    print("\nNext: `make ui` and open http://127.0.0.1:3000 for runs, lineage, checks and metadata.")


def print_review_inbox_summary() -> None:
    """What now waits for people, per workflow: the demo's end is where a reviewer's work starts."""
    waiting = list_items(OpStore(default_opstore_url()))
    per_workflow = pd.Series([item.workflow for item in waiting], dtype="object").value_counts().to_dict()
    print(f"\nReview inbox, all workflows: {len(waiting)} item(s) waiting {per_workflow}; `make review` "
          "serves it (sign-in: README, Human review)")  # fmt: skip


def run_fraud_demo(
    instance: DagsterInstance, workspace: BaseWorkspaceRequestContext, n_accounts: int, with_bad_file: bool
) -> None:
    layout = paths()
    landing = layout.landing(WORKFLOW)
    landing.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=landing.parent, prefix=".arriving-") as arriving:
        # Batches land only once a model is promoted, as in production: scoring needs one.
        labelled = write_demo_files(layout.history(WORKFLOW), Path(arriving), n_accounts=n_accounts)
        if with_bad_file:
            (Path(arriving) / "transactions_broken.csv").write_text(
                "transaction_id,account_id,amount\nX1,A1,not-a-number\nX1,A2,12.5\n"
            )
        print("\n[1/6] fraud_training_job: labelled history -> model candidate -> check -> promoted model")
        run_or_stop(instance, workspace, "fraud_training_job")
        to_score = land_unfinished(instance, Path(arriving), landing, layout.quarantine(WORKFLOW))
        print(f"\n[2/6] fraud_scoring_job: {len(to_score)} new landing file(s), one partition each")
        run_batches(instance, workspace, "fraud_scoring_job", fraud_batches.name, to_score, LANDING_SHA_TAG,
                    failure_hint=" (see quarantine)")  # fmt: skip
    print_summary(labelled)


def run_batches(
    instance: DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    job_name: str,
    partitions_name: str,
    files: list[LandedFile],
    sha_tag: str,
    failure_hint: str = "",
) -> None:
    """One run per landed file, tagged as the landing sensors tag theirs; wait, then print each outcome."""
    instance.add_dynamic_partitions(partitions_name, [f.name for f in files])
    runs = {
        f.name: submit(instance, workspace, job_name, {"dagster/partition": f.name, sha_tag: f.sha256})
        for f in files
    }
    statuses = wait_for_runs(instance, list(runs.values()))
    for name, run_id in runs.items():
        outcome = "ok" if statuses[run_id] == DagsterRunStatus.SUCCESS else f"FAILED{failure_hint}"
        print(f"      {name}: run {run_id} {outcome}")


def run_or_stop(instance: DagsterInstance, workspace: BaseWorkspaceRequestContext, job_name: str) -> None:
    """Launch one unpartitioned run and wait for it; the demo cannot go on without it."""
    run_id = submit(instance, workspace, job_name)
    status = wait_for_runs(instance, [run_id])[run_id]
    print(f"      run {run_id}: {'ok' if status == DagsterRunStatus.SUCCESS else 'FAILED'}")
    if status != DagsterRunStatus.SUCCESS:
        raise SystemExit(f"{job_name} failed; see the run in the Dagster UI (make ui)")


def run_support_demo(
    instance: DagsterInstance, workspace: BaseWorkspaceRequestContext, batch_size: int
) -> None:
    """Support triage without an API key: the local classifier answers with templated replies, and what
    it cannot answer safely goes to a person. Runs are launched as the landing sensor launches them."""
    layout = paths()
    landing = layout.landing(SUPPORT)
    landing.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=landing.parent, prefix=".arriving-") as arriving:
        write_support_files(
            layout.history(SUPPORT), Path(arriving), tickets=2000, batches=2, batch_size=batch_size, seed=7
        )
        print("\n[3/6] support_training_job: customers, orders, labelled tickets -> ticket classifier")
        run_or_stop(instance, workspace, "support_training_job")
        for path in Path(arriving).iterdir():  # a rename: the landing folder never sees half a file
            path.rename(landing / path.name)
    owed = [f for f in scan_landing(landing) if not support_already_ingested(instance, f.name, f.sha256)]
    print(f"\n[4/6] support_triage_job: {len(owed)} new ticket file(s), one partition each")
    run_batches(
        instance, workspace, "support_triage_job", support_batches.name, owed, SUPPORT_LANDING_SHA_TAG
    )
    print_support_summary()


def print_support_summary() -> None:
    with duckdb.connect(str(paths().warehouse), read_only=True) as con:
        routes = con.execute(
            "SELECT route, count(*) AS tickets FROM support.routes GROUP BY route ORDER BY tickets DESC"
        ).fetchall()
        states = con.execute(
            "SELECT batch_id, status, count(*) AS tickets FROM support.outbox GROUP BY batch_id, status"
        ).df()
    print("\nTickets per route (no LLM tier configured): " + ", ".join(f"{r} {n}" for r, n in routes))
    table = states.pivot_table(
        index="batch_id", columns="status", values="tickets", aggfunc="sum", fill_value=0
    )
    print("Outbox per final state (published table support.outbox):")
    print(table.to_string())
    print(
        "  ready: templated reply citing a knowledge-base article; awaiting_approval: a person approves "
        "first (refunds, legal threats, account changes); human_review: a person answers; rejected: "
        "failed the ticket contract"
    )


def run_maintenance_demo(
    instance: DagsterInstance, workspace: BaseWorkspaceRequestContext
) -> tuple[str, str]:
    """Train the plant's anomaly models on five healthy days, then run the next day: (day, its run id)."""
    layout = paths()
    first_day = write_maintenance_demo_files(layout.history("maintenance"), layout.landing("maintenance"))
    day = f"{first_day:%Y-%m-%d}"
    print("\n[5/6] maintenance_training_job: healthy plant history -> candidate -> check -> promoted models")
    run_or_stop(instance, workspace, "maintenance_training_job")
    print(f"\n[6/6] maintenance_daily_job: plant day {day} -> alerts -> work orders")
    run_id = submit(instance, workspace, "maintenance_daily_job", {"dagster/partition": day})
    ok = wait_for_runs(instance, [run_id])[run_id] == DagsterRunStatus.SUCCESS
    print(f"      run {run_id}: {'ok' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit("the maintenance day failed; see the run in the Dagster UI (make ui)")
    return day, run_id


def print_maintenance_summary(day: str, run_id: str) -> None:
    """What the plant day produced: work orders opened (with evidence) and alerts waiting for a person."""
    layout = paths()
    with duckdb.connect(str(layout.warehouse), read_only=True) as con:
        statuses = dict(
            con.execute(
                "SELECT status, count(*) FROM maintenance.alerts WHERE day = ? GROUP BY 1", [day]
            ).fetchall()
        )
    system = MaintenanceSystem(OpStore(default_opstore_url()), None)
    opened_today = [o for o in system.work_orders() if o["run_id"] == run_id]
    orders = statuses.get(WORK_ORDER, 0)
    print(
        f"\nMaintenance day {day}: {orders} work order{'s' if orders != 1 else ''} "
        f"({len(opened_today)} newly opened), {statuses.get(HUMAN_REVIEW, 0)} sent to human review, "
        f"{statuses.get(SUPPRESSED, 0)} suppressed (machine already has an open work order)"
    )
    print(f"Evidence plots: {layout.data_dir / 'evidence' / 'maintenance'}; table maintenance.alerts")


def land_unfinished(
    instance: DagsterInstance, arriving: Path, landing: Path, quarantine: Path
) -> list[LandedFile]:
    """Move the arrived files into the landing folder (a rename: never seen half-written) and return
    those still owed a run; a file already quarantined with this content stays out."""
    plans = {p.facts.name: p for p in plan_batches(instance, scan_landing(arriving), quarantine, time.time())}
    for name, plan in plans.items():
        if plan.state is not BatchState.QUARANTINED:
            (arriving / name).rename(landing / name)
    owed = {name for name, plan in plans.items() if plan.state in (BatchState.NEW, BatchState.STRANDED)}
    return [f for f in scan_landing(landing) if f.name in owed]


def print_summary(labelled: dict[str, pd.DataFrame]) -> None:
    layout = paths()
    card = ModelRegistry(layout.models).card("fraud")
    print(
        f"\nPromoted model {card['version']}: PR-AUC {card['metrics']['pr_auc']:.3f}, "
        f"recall at 1% FPR {card['metrics']['recall_at_1pct_fpr']:.3f} (time-based hold-out)"
    )
    with duckdb.connect(str(layout.warehouse)) as con:
        decisions = con.execute(
            "SELECT batch_id, transaction_id, decision FROM fraud.decisions ORDER BY batch_id"
        ).df()
    truth = pd.concat([b[["transaction_id", "is_fraud"]] for b in labelled.values()], ignore_index=True)
    joined = decisions.merge(truth, on="transaction_id", how="left")
    table = joined.pivot_table(
        index="batch_id", columns="decision", values="transaction_id", aggfunc="count", fill_value=0
    )
    print("\nDecisions per queue (published table fraud.decisions):")
    print(table.to_string())
    fraud_cases = joined[joined["is_fraud"] == 1]["decision"].value_counts()
    print(f"\nKnown fraud in these batches: {int(fraud_cases.sum())} cases -> {fraud_cases.to_dict()}")
    store = OpStore(default_opstore_url())
    entries = read_audit_log(store, "fraud")
    broken = verify_audit_chain(store)
    print(
        f"Audit log: {len(entries)} fraud events, "
        f"hash chain {'intact' if not broken else f'BROKEN at {broken}'}"
    )
    waiting = list_items(store, workflow="fraud")
    kinds = pd.Series([item.kind for item in waiting], dtype="object").value_counts().to_dict()
    print(f"Review inbox: {len(waiting)} fraud item(s) waiting for a person {kinds}; "
          "`orchestration-pipelines review list` shows them")  # fmt: skip
    quarantined = sorted(p.name for p in layout.quarantine("fraud").glob("*.reason.json"))
    if quarantined:
        print(f"Quarantined: {quarantined} in {layout.quarantine('fraud')}")
    print(
        f"\nWarehouse: {layout.warehouse}  (tables fraud.transactions, fraud.features, fraud.scores, "
        "fraud.decisions_staging, fraud.decisions)"
    )
