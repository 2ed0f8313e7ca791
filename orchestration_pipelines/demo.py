"""The end-to-end demo behind ``make demo``: real Dagster runs on the local instance, then a summary.

Runs are executed in this process against the instance in ``DAGSTER_HOME``, so they appear in the
UI afterwards exactly as daemon-launched runs would; files the demo ingested are recognised by the
landing sensor later and not scored twice.
"""

from __future__ import annotations

import duckdb
import pandas as pd
from dagster import DagsterInstance

from assets.fraud import LANDING_SHA_TAG, already_ingested, fraud_batches
from orchestration_pipelines.audit import read_audit_log, verify_audit_chain
from orchestration_pipelines.definitions import build_definitions
from orchestration_pipelines.fraud.generator import write_demo_files
from orchestration_pipelines.landing import scan_landing
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import default_opstore_url, paths


def run_fraud_demo(n_accounts: int = 5000, with_bad_file: bool = False) -> None:
    layout = paths()
    instance = DagsterInstance.get()
    print(f"Dagster instance: {instance.root_directory}\nData: {layout.data_dir}")
    labelled = write_demo_files(layout.history("fraud"), layout.landing("fraud"), n_accounts=n_accounts)
    if with_bad_file:
        broken = layout.landing("fraud") / "transactions_broken.csv"
        broken.write_text("transaction_id,account_id,amount\nX1,A1,not-a-number\nX1,A2,12.5\n")

    defs = build_definitions()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    print("\n[1/2] fraud_training_job: labelled history -> model candidate -> check -> promoted model")
    training = defs.resolve_job_def("fraud_training_job").execute_in_process(
        instance=instance, run_config=quiet, raise_on_error=False
    )
    print(f"      run {training.run_id}: {'ok' if training.success else 'FAILED'}")
    if not training.success:
        raise SystemExit("training failed; see the run in the Dagster UI (make ui)")

    scoring = defs.resolve_job_def("fraud_scoring_job")
    to_score = [
        f for f in scan_landing(layout.landing("fraud")) if not already_ingested(instance, f.name, f.sha256)
    ]
    print(f"\n[2/2] fraud_scoring_job: {len(to_score)} new landing file(s), one partition each")
    instance.add_dynamic_partitions(fraud_batches.name, [f.name for f in to_score])
    for landed in to_score:
        run = scoring.execute_in_process(
            instance=instance,
            partition_key=landed.name,
            tags={LANDING_SHA_TAG: landed.sha256},
            run_config=quiet,
            raise_on_error=False,
        )
        print(f"      {landed.name}: run {run.run_id} {'ok' if run.success else 'FAILED (see quarantine)'}")
    print_summary(labelled)


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
    quarantined = sorted(p.name for p in layout.quarantine("fraud").glob("*.reason.json"))
    if quarantined:
        print(f"Quarantined: {quarantined} in {layout.quarantine('fraud')}")
    print(
        f"\nWarehouse: {layout.warehouse}  (tables fraud.transactions, fraud.features, fraud.scores, "
        "fraud.decisions_staging, fraud.decisions)"
    )
    print("Next: `make ui` and open http://127.0.0.1:3000 for runs, lineage, checks and metadata.")
