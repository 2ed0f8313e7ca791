"""Support triage assets, one dynamic partition per landed ticket file:
``raw_tickets -> classification -> routes -> replies -> outbox``.
Reference data (``customers``, ``orders``, ``labelled_tickets``) and the ``classifier`` model come from
the history folder. Domain logic lives in ``orchestration_pipelines.support``; this is the wiring.
"""

import json
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
)
from dagster_duckdb import DuckDBResource

from assets.audit_effects import audit_anchor, deliver_published_record
from orchestration_pipelines.audit import (
    AuditRecord,
    audit_record_for_quarantine,
    deliver_pending_audit_or_warn,
    deliver_quarantine_record,
)
from orchestration_pipelines.landing import (
    UnreadableFile,
    UnsafeName,
    file_sha256,
    path_inside,
    quarantine_file,
    read_table_file,
    validate_file_name,
)
from orchestration_pipelines.learning.feedback import mark_used, read_feedback, warehouse_cases
from orchestration_pipelines.learning.support import train_with_feedback
from orchestration_pipelines.model_registry import ModelNotFound
from orchestration_pipelines.prompt_registry import PromptRegistry
from orchestration_pipelines.reporting import markdown_table
from orchestration_pipelines.router import active_router_policy, gateway_ask
from orchestration_pipelines.support import load_classifier, promote_classifier
from orchestration_pipelines.support.agent import CustomerTools, Reviewer, draft_reply
from orchestration_pipelines.support.classifier import MODEL_NAME
from orchestration_pipelines.support.contract import read_ticket_file, validate_tickets
from orchestration_pipelines.support.knowledge import KnowledgeBase
from orchestration_pipelines.support.outbox import OUTBOX_STATUSES, compose_outbox, draft_replies
from orchestration_pipelines.support.policy import load_support_policy
from orchestration_pipelines.support.router_calibration import (
    calibrate_candidate,
    register_candidate,
    shadowed_candidate,
)
from orchestration_pipelines.support.tables import column_names, create_tables, replace_batch_with_record
from orchestration_pipelines.support.triage import (
    RouterShadow,
    Triage,
    classify_tickets,
    intent_prompt,
    route_tickets,
)
from resources.landing import LandingZoneResource
from resources.llm import LLM_POOL, LLMGatewayResource
from resources.models import ModelRegistryResource
from resources.opstore import OperationalStoreResource
from resources.warehouse import WAREHOUSE_POOL

WORKFLOW = "support"
support_batches = DynamicPartitionsDefinition(name="support_batches")
LANDING_SHA_TAG = "support/landing_sha256"  # run tag: the content the sensor saw
SOURCE_SHA_METADATA = "source_sha256"  # materialization metadata: the content that was ingested
LOW_CONFIDENCE = 0.85  # below: the local answer alone is not trusted (router.yaml local_min)
_common = {"key_prefix": WORKFLOW, "group_name": WORKFLOW, "owners": ["team:support-ops"]}
_reference_table = {
    **_common,
    "pool": WAREHOUSE_POOL,
    "io_manager_key": "warehouse_io_manager",
    "kinds": {"duckdb", "pandas"},
}
_batch_table = {
    **_reference_table,
    "partitions_def": support_batches,
    "metadata": {"partition_expr": "batch_id"},
}
_llm_batch_table = {**_batch_table, "pool": LLM_POOL, "kinds": {"duckdb", "pandas", "openai"}}


def _history_files(landing: LandingZoneResource, prefix: str) -> list[Path]:
    folder = landing.history(WORKFLOW)
    return sorted(p for p in folder.glob(f"{prefix}*") if p.suffix in (".csv", ".parquet"))


def _read_history(landing: LandingZoneResource, prefix: str) -> pd.DataFrame:
    files = _history_files(landing, prefix)
    if not files:
        raise Failure(
            f"no {prefix} files in {landing.history(WORKFLOW)}: "
            "run `orchestration-pipelines support generate`",
            allow_retries=False,
        )
    return pd.concat([read_table_file(p) for p in files], ignore_index=True)


@asset(**_reference_table)
def customers(landing: LandingZoneResource) -> pd.DataFrame:
    """Customers (id, name, e-mail, phone, language): names feed redaction and reply greetings."""
    return _read_history(landing, "customers")


@asset(**_reference_table)
def orders(landing: LandingZoneResource) -> pd.DataFrame:
    """Orders (id, customer, product, amount, status): what the agent's order lookup reads."""
    return _read_history(landing, "orders")


@asset(**_reference_table)
def labelled_tickets(landing: LandingZoneResource) -> pd.DataFrame:
    """Tickets labelled with intent and urgency: the classifier's training data and customers' history."""
    return _read_history(landing, "tickets")


@asset(**_common, kinds={"scikitlearn"})
def classifier(
    labelled_tickets: pd.DataFrame,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
) -> MaterializeResult:
    """The local intent and urgency classifier, trained and evaluated on the labelled tickets and
    reviewers' corrected intents (the operational store's feedback, marked used by this version).

    The version is saved; it is promoted only when none is promoted yet (first run). Later versions
    are promoted by a person (`orchestration-pipelines support promote VERSION`), audited.
    """
    registry = model_registry.registry()
    store = opstore.store()
    feedback = read_feedback(store, WORKFLOW)
    landed = None
    if len(feedback):
        with warehouse.get_connection() as con:
            landed = warehouse_cases(con, "support.raw_tickets", "ticket_id", feedback["case_id"])
    model, report, use = train_with_feedback(
        labelled_tickets, feedback, landed, urgency="urgency", language="language"
    )
    version = registry.save(
        MODEL_NAME,
        model,
        {
            "intents": model.intents,
            "text_columns": ["subject", "body"],
            "metrics": report.metrics,
            "feedback": use.card_entry(),
            "holdout": report.holdout.to_dict("list"),  # what the router is calibrated on
        },
    )
    if use.used_ids:
        mark_used(store, use.used_ids, version)
    promoted = registry.current_version(MODEL_NAME) is None
    if promoted:
        promote_classifier(registry, store, version, actor="bootstrap: first classifier")
    per_language = report.metrics["per_language"]
    return MaterializeResult(
        metadata={
            "version": version,
            "promoted": promoted,
            "holdout_accuracy": MetadataValue.float(report.metrics["intent"]["accuracy"]),
            "holdout_macro_f1": MetadataValue.float(report.metrics["intent"]["macro_f1"]),
            "feedback_rows_used": MetadataValue.int(len(use.used_ids)),
            "feedback_by_intent": MetadataValue.json(use.by_intent),
            "feedback_unmatched": MetadataValue.int(len(use.unmatched_ids)),
            "per_language": MetadataValue.md(
                markdown_table(
                    pd.DataFrame(
                        [
                            {
                                "language": lang,
                                "tickets": m["rows"],
                                "accuracy": m["accuracy"],
                                "macro_f1": m["macro_f1"],
                            }
                            for lang, m in per_language.items()
                        ]
                    ),
                    4,
                )
            ),
        }
    )


class RouterCalibrationConfig(Config):
    target_accuracy: float = 0.95  # overall, counting a person's answer below the threshold as right


@asset(**_common, deps=[classifier], kinds={"numpy"})
def router_candidate(
    context: AssetExecutionContext,
    config: RouterCalibrationConfig,
    model_registry: ModelRegistryResource,
    opstore: OperationalStoreResource,
) -> MaterializeResult:
    """The router's thresholds calibrated on the new classifier's hold-out tickets, registered as the
    CANDIDATE router policy: the triage runs it in shadow; a person promotes it
    (`orchestration-pipelines router promote VERSION --actor WHO`)."""
    event = context.instance.get_latest_materialization_event(classifier.key)
    version = event.asset_materialization.metadata["version"].value
    card = model_registry.registry().card(MODEL_NAME, version)
    store = opstore.store()
    candidate = calibrate_candidate(
        pd.DataFrame(card["holdout"]),
        active_router_policy(store),
        f"calibrated-{version}",
        config.target_accuracy,
    )
    register_candidate(store, candidate, actor="support_training_job", run_id=context.run.run_id)
    evidence = candidate.evidence
    return MaterializeResult(
        metadata={
            "candidate_version": candidate.policy.version,
            "differs_from_active": candidate.differs_from_active,
            "reason": candidate.reason,
            "calibrated": evidence["calibrated"],
            "items_used": MetadataValue.int(evidence["items"]),
            "thresholds_before": MetadataValue.json(evidence["thresholds_before"]),
            "thresholds_after": MetadataValue.json(evidence["thresholds_after"]),
            "expected_per_route": MetadataValue.json(evidence["expected"]),
            "reached_target": evidence["reached_target"],
        }
    )


@asset(**_batch_table)
def raw_tickets(
    context: AssetExecutionContext,
    landing: LandingZoneResource,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
) -> pd.DataFrame:
    """One landed ticket file against the ticket contract: accepted rows (with notes) and rejected rows
    (``contract_status = 'rejected'`` with the reason), so no ticket is dropped. An unreadable file is
    quarantined with its reason and the run fails."""
    try:
        name = validate_file_name(context.partition_key)
        path = path_inside(landing.landing(WORKFLOW), name)
    except UnsafeName as exc:
        raise Failure(str(exc), allow_retries=False) from None
    if not path.exists():
        raise Failure(f"landing file {path} not found (already quarantined or removed)", allow_retries=False)
    sha = file_sha256(path)
    try:
        contract = validate_tickets(read_ticket_file(path))
    except (UnreadableFile, ValueError, UnicodeError) as exc:
        reason = {
            "workflow": WORKFLOW,
            "file": name,
            "run_id": context.run.run_id,
            "sha256": sha,
            "errors": [{"kind": "unreadable", "message": str(exc)[:500]}],
        }
        reason = audit_record_for_quarantine(WORKFLOW, name, reason, context.run.run_id)
        target = quarantine_file(path, landing.quarantine(WORKFLOW), reason)
        deliver_quarantine_record(opstore.store(), reason, context.log)
        raise Failure(f"{name} rejected and moved to {target}: {exc}", allow_retries=False) from exc
    accepted = contract.accepted.assign(contract_status="accepted", reason="")
    rejected = contract.rejected.assign(contract_status="rejected")
    batch = pd.concat([accepted, rejected], ignore_index=True).astype({"created_at": "datetime64[ns, UTC]"})
    batch.insert(0, "batch_id", name)
    with warehouse.get_connection() as con:
        create_tables(con)
    context.add_output_metadata(
        {
            SOURCE_SHA_METADATA: sha,
            "accepted": MetadataValue.int(len(accepted)),
            "rejected": MetadataValue.int(len(rejected)),
            "with_notes": MetadataValue.int(int(accepted["notes"].ne("").sum())),
            "rejections": MetadataValue.md(
                markdown_table(contract.rejected.head(20)) if len(rejected) else "none"
            ),
        }
    )
    return batch


def already_ingested(instance: DagsterInstance, name: str, sha256: str) -> bool:
    """Whether the latest ingest of partition ``name`` read exactly this content."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=raw_tickets.key, asset_partitions=[name]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata if records else {}
    return SOURCE_SHA_METADATA in metadata and metadata[SOURCE_SHA_METADATA].value == sha256


def _accepted(raw: pd.DataFrame) -> pd.DataFrame:
    return raw[raw["contract_status"] == "accepted"].reset_index(drop=True)


@asset(**_batch_table, deps=[classifier])
def classification(
    context: AssetExecutionContext, raw_tickets: pd.DataFrame, model_registry: ModelRegistryResource
) -> pd.DataFrame:
    """The local classifier's intent, urgency and calibrated probabilities for each accepted ticket."""
    try:
        model, card = load_classifier(model_registry.registry())
    except ModelNotFound as exc:
        raise Failure(
            f"{exc}; or `orchestration-pipelines support train ... --promote`", allow_retries=False
        ) from exc
    tickets = _accepted(raw_tickets)
    result = classify_tickets(tickets, model)
    result.insert(0, "batch_id", context.partition_key)
    result["classifier_version"] = card["version"]
    low = float((result["local_confidence"] < LOW_CONFIDENCE).mean()) if len(result) else 0.0
    context.add_output_metadata(
        {
            "classifier_version": card["version"],
            "low_confidence_share": MetadataValue.float(round(low, 4)),
            "mean_confidence": MetadataValue.float(round(float(result["local_confidence"].mean() or 0), 4)),
            "holdout_macro_f1": MetadataValue.float(card["metrics"]["intent"]["macro_f1"]),
        }
    )
    return result


@asset_check(asset=classification, blocking=False)
def low_confidence_share_stable(context, classification: pd.DataFrame) -> AssetCheckResult:
    """Warns when this batch's low-confidence share is well above the recent batches' (drifting input)."""
    share = (
        float((classification["local_confidence"] < LOW_CONFIDENCE).mean()) if len(classification) else 0.0
    )
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey([WORKFLOW, "classification"])), limit=11
    ).records
    recent = [
        r.asset_materialization.metadata["low_confidence_share"].value
        for r in records[1:]
        if "low_confidence_share" in r.asset_materialization.metadata
    ]
    baseline = sum(recent) / len(recent) if recent else None
    drifted = baseline is not None and share > baseline + 0.10
    return AssetCheckResult(
        passed=not drifted,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "low_confidence_share": share,
            "recent_share": baseline if baseline is not None else "no history",
        },
        description=f"low-confidence share {share:.1%} vs recent {baseline:.1%}" if drifted else None,
    )


def _with_names(tickets: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Customer names join locally: they become placeholders before any text reaches a model."""
    names = customers.drop_duplicates("customer_id").set_index("customer_id")["name"]
    return tickets.assign(customer_name=tickets["customer_id"].map(names))


@asset(**_llm_batch_table, ins={"customers": AssetIn(key=[WORKFLOW, "customers"])})
def routes(
    context: AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    classification: pd.DataFrame,
    customers: pd.DataFrame,
    llm: LLMGatewayResource,
    opstore: OperationalStoreResource,
) -> pd.DataFrame:
    """Who handles each ticket (local, small LLM, strong LLM, person) and the LLM's intent where one
    was asked, with reason, cost and the policy, prompt and classifier versions."""
    tickets = _with_names(_accepted(raw_tickets), customers)
    gateway = llm.gateway()
    ctx = llm.call_context(context, WORKFLOW)
    store = opstore.store()
    prompt = intent_prompt(_classifier_intents(classification), store)

    def ask_for(ticket):
        return gateway_ask(gateway, prompt, ticket, ctx, "intent")

    tier_costs = {}
    if gateway.tiers and len(tickets):  # the worst case of a typical request: what the router weighs
        sample, _ = gateway.messages(prompt, tickets.iloc[0].to_dict(), WORKFLOW)
        tier_costs = {
            t: gateway.worst_case_cost(t, gateway.structured_request(t, prompt, sample))
            for t in gateway.tier_names
        }
    triage = Triage(
        classifier_version=str(classification["classifier_version"].iloc[0]) if len(classification) else "",
        policy=load_support_policy(),
        router_policy=active_router_policy(store),
        tier_cost_usd=tier_costs,
        remaining_budget_usd=lambda: gateway.ledger.remaining_budget(WORKFLOW),
    )
    candidate = shadowed_candidate(store, triage.router_policy)
    shadow = RouterShadow(store, candidate) if candidate else None
    routed = route_tickets(tickets, classification, triage, ask_for if gateway.tiers else None, shadow)
    routed["prompt"] = f"{prompt.id}.v{prompt.version}"
    routed.insert(0, "batch_id", context.partition_key)
    shadow_metadata = {
        "router_policy_version": triage.router_policy.version,
        "shadow_experiment": shadow.experiment(triage.router_policy).key if shadow else "none",
    }
    context.add_output_metadata(_routing_metadata(routed) | shadow_metadata | llm.run_usage_metadata(context))
    return routed


def _classifier_intents(classification: pd.DataFrame) -> list[str]:
    return (
        list(json.loads(classification["intent_probabilities"].iloc[0]))
        if len(classification)
        else ["unknown"]
    )


def _routing_metadata(routed: pd.DataFrame) -> dict[str, MetadataValue]:
    n = max(len(routed), 1)
    escalations = routed[routed["route"] != "local"].head(5)[
        ["ticket_id", "route", "answered_by", "intent", "reason"]
    ]
    return {
        "route_shares": MetadataValue.json(routed["route"].value_counts().div(n).round(4).to_dict()),
        "answered_by_shares": MetadataValue.json(
            routed["answered_by"].value_counts().div(n).round(4).to_dict()
        ),
        "llm_cost_per_ticket_usd": MetadataValue.float(round(float(routed["cost_usd"].sum()) / n, 6)),
        "escalation_examples": MetadataValue.md(markdown_table(escalations) if len(escalations) else "none"),
    }


@asset(
    **_llm_batch_table,
    ins={name: AssetIn(key=[WORKFLOW, name]) for name in ("customers", "orders", "labelled_tickets")},
)
def replies(
    context: AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    routes: pd.DataFrame,
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    labelled_tickets: pd.DataFrame,
    llm: LLMGatewayResource,
    opstore: OperationalStoreResource,
) -> pd.DataFrame:
    """Templated replies citing a knowledge-base article for tickets answered locally; drafts by the
    bounded agent for tickets routed to an LLM tier (reviewed, never sent here)."""
    tickets = _with_names(_accepted(raw_tickets), customers)
    knowledge_base = KnowledgeBase.load()
    gateway = llm.gateway()
    agent = None
    if gateway.tiers:
        ctx = llm.call_context(context, WORKFLOW)
        prompt = PromptRegistry().active("support_agent", opstore.store())
        policy = load_support_policy()

        def agent(ticket):
            customer_id = ticket["customer_id"]
            tools = CustomerTools(knowledge_base, orders, labelled_tickets, customer_id)
            own_orders = frozenset(orders.loc[orders["customer_id"] == customer_id, "order_id"])
            reviewer = Reviewer(policy.refund_limit_eur, customers, own_orders, customer_id)
            tier = ticket["route"] if ticket["route"] in gateway.tier_names else gateway.tier_names[-1]
            return draft_reply(
                ticket, gateway=gateway, tier=tier, prompt=prompt, tools=tools, reviewer=reviewer, ctx=ctx
            )

    drafted = draft_replies(tickets, routes, knowledge_base, agent)
    drafted.insert(0, "batch_id", context.partition_key)
    context.add_output_metadata(
        {
            "templated": MetadataValue.int(int((drafted["source"] == "template").sum())),
            "agent_drafts": MetadataValue.int(int((drafted["source"] == "agent").sum())),
            "agent_refused_by_review": MetadataValue.int(
                int(((drafted["source"] == "agent") & drafted["reply"].isna()).sum())
            ),
        }
        | llm.run_usage_metadata(context)
    )
    return drafted


@asset(**{k: v for k, v in _batch_table.items() if k not in ("io_manager_key", "metadata")})
def outbox(
    context: AssetExecutionContext,
    raw_tickets: pd.DataFrame,
    routes: pd.DataFrame,
    replies: pd.DataFrame,
    opstore: OperationalStoreResource,
    warehouse: DuckDBResource,
    landing: LandingZoneResource,
    model_registry: ModelRegistryResource,
) -> MaterializeResult:
    """Every input ticket exactly once: ``ready``, ``awaiting_approval`` (refunds, legal threats, account
    changes wait for a person), ``human_review`` or ``rejected``, with why and what data was used.
    Nothing is sent by this pipeline; a sender reads the ``ready`` and approved rows. The rows and their
    ``outbox_written`` audit record are one warehouse transaction; the record is delivered to the audit
    log right after, or by the next step that finds it pending."""
    batch = context.partition_key
    accepted = _accepted(raw_tickets)
    rejected = raw_tickets[raw_tickets["contract_status"] == "rejected"][["ticket_id", "reason"]]
    result = compose_outbox(
        accepted, rejected, routes.drop(columns=["batch_id"]), replies.drop(columns=["batch_id"])
    )
    result.insert(0, "batch_id", batch)
    counts = {status: int((result["status"] == status).sum()) for status in OUTBOX_STATUSES}
    record = AuditRecord.new(
        "outbox_written",
        workflow=WORKFLOW,
        subject=batch,
        details={"counts": counts, "cost_usd": float(result["cost_usd"].sum())},
        run_id=context.run.run_id,
    )
    store = opstore.store()
    with warehouse.get_connection() as con:
        create_tables(con)
        deliver_pending_audit_or_warn(
            store,
            context.log,
            warehouse=con,
            registry=model_registry.registry(),
            quarantine_root=landing.quarantine(WORKFLOW),
        )
        replace_batch_with_record(con, "outbox", batch, result, record)
        entry = deliver_published_record(con, store, record.event_id, context.log)
    audit = audit_anchor(entry, retries_left=False)  # no step retry: a reconciler delivers it later
    return MaterializeResult(
        metadata={
            **{f"status_{s}": MetadataValue.int(n) for s, n in counts.items()},
            "cost_per_ticket_usd": MetadataValue.float(
                round(float(result["cost_usd"].sum()) / max(len(result), 1), 6)
            ),
            "tickets": MetadataValue.int(len(result)),
            "dagster/row_count": MetadataValue.int(len(result)),
            "dataframe_columns": MetadataValue.table_schema(
                TableSchema([TableColumn(name, str(result[name].dtype)) for name in column_names("outbox")])
            ),
            **audit,
        }
    )


SUPPORT_REFERENCE_ASSETS = [customers, orders, labelled_tickets, classifier, router_candidate]
SUPPORT_BATCH_ASSETS = [raw_tickets, classification, routes, replies, outbox]
SUPPORT_ASSETS = [*SUPPORT_REFERENCE_ASSETS, *SUPPORT_BATCH_ASSETS]
SUPPORT_CHECKS = [low_confidence_share_stable]
