"""The Dagster code location: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

from dagster import Definitions

from assets.fraud import FRAUD_ASSETS, FRAUD_CHECKS
from assets.fraud_lifecycle import no_stranded_batches
from assets.fraud_review import FRAUD_REVIEW_ASSETS
from assets.llm_ops import LLM_OPS_ASSETS, LLM_OPS_CHECKS, llm_resources
from assets.maintenance import MAINTENANCE_ASSETS, MAINTENANCE_CHECKS
from assets.maintenance_review import MAINTENANCE_REVIEW_ASSETS
from assets.support import SUPPORT_ASSETS, SUPPORT_CHECKS
from assets.support_review import SUPPORT_REVIEW_ASSETS
from orchestration_pipelines.jobs import (
    fraud_account_state_rebuild_job,
    fraud_scoring_job,
    fraud_training_job,
    maintenance_daily_job,
    maintenance_training_job,
    review_apply_actions_job,
    support_training_job,
    support_triage_job,
)
from orchestration_pipelines.schedules import fraud_nightly_training, maintenance_daily
from resources.connectors import connector_resources
from resources.landing import landing_zone_resource
from resources.maintenance import maintenance_resources
from resources.models import fraud_policy_resource, model_registry_resource
from resources.opstore import opstore_resource
from resources.warehouse import warehouse_io_manager, warehouse_resource
from sensors.automation import automation_condition_sensor
from sensors.fraud import fraud_landing_sensor
from sensors.maintenance import maintenance_landing_sensor
from sensors.review import review_decisions_sensor, review_timeouts_sensor
from sensors.support import support_landing_sensor


def build_resources() -> dict:
    """Resources as configured by the environment at call time, so tests can point them elsewhere."""
    return {
        "warehouse": warehouse_resource(),
        "warehouse_io_manager": warehouse_io_manager(),
        "landing": landing_zone_resource(),
        "model_registry": model_registry_resource(),
        "fraud_policy": fraud_policy_resource(),
        "opstore": opstore_resource(),
        **llm_resources(),
        **maintenance_resources(),
        **connector_resources(),
    }


def build_definitions() -> Definitions:
    return Definitions(
        assets=[
            *FRAUD_ASSETS,
            *FRAUD_REVIEW_ASSETS,
            *LLM_OPS_ASSETS,
            *MAINTENANCE_ASSETS,
            *MAINTENANCE_REVIEW_ASSETS,
            *SUPPORT_ASSETS,
            *SUPPORT_REVIEW_ASSETS,
        ],
        asset_checks=[
            *FRAUD_CHECKS,
            no_stranded_batches,
            *LLM_OPS_CHECKS,
            *MAINTENANCE_CHECKS,
            *SUPPORT_CHECKS,
        ],
        jobs=[
            fraud_scoring_job,
            fraud_training_job,
            fraud_account_state_rebuild_job,
            maintenance_daily_job,
            maintenance_training_job,
            support_triage_job,
            support_training_job,
            review_apply_actions_job,
        ],
        schedules=[fraud_nightly_training, maintenance_daily],
        sensors=[
            fraud_landing_sensor,
            maintenance_landing_sensor,
            support_landing_sensor,
            automation_condition_sensor,
            review_decisions_sensor,
            review_timeouts_sensor,
        ],
        resources=build_resources(),
    )


defs = build_definitions()
