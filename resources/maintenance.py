"""Resources of the maintenance workflow: plant and policy files, the maintenance system, the notifier."""

from __future__ import annotations

from dagster import ConfigurableResource

from orchestration_pipelines.maintenance.plant import PlantConfig, load_plant
from orchestration_pipelines.maintenance.policy import MaintenancePolicy, load_maintenance_policy
from orchestration_pipelines.maintenance.work_orders import MaintenanceSystem, Notifier
from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import default_opstore_url
from resources.env import env_or_default


class MaintenanceConfigResource(ConfigurableResource):
    """The plant file (sensors, machine types, machines, downtime calendar) and the alerting policy;
    empty paths mean the versions packaged with the code."""

    plant_path: str = ""
    policy_path: str = ""

    def plant(self) -> PlantConfig:
        return load_plant(self.plant_path or None)

    def policy(self) -> MaintenancePolicy:
        return load_maintenance_policy(self.policy_path or None)


class MaintenanceSystemResource(ConfigurableResource):
    """Work orders: a table in the operational store, delivered to ``webhook_url`` when set, with
    retries; idempotent per machine and alert episode."""

    opstore_url: str
    webhook_url: str = ""
    attempts: int = 5
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0

    def system(self) -> MaintenanceSystem:
        """Also the actions outbox's connector for ``open_work_order``."""
        return MaintenanceSystem(OpStore(self.opstore_url), self.webhook_url or None, self.attempts,
                                 self.backoff_seconds, self.timeout_seconds)  # fmt: skip


class NotifierResource(ConfigurableResource):
    """Team notifications: an outbox table in the operational store, posted to ``webhook_url`` when set."""

    opstore_url: str
    webhook_url: str = ""
    attempts: int = 5
    backoff_seconds: float = 1.0

    def notifier(self) -> Notifier:
        return Notifier(
            OpStore(self.opstore_url), self.webhook_url or None, self.attempts, self.backoff_seconds
        )


def maintenance_resources() -> dict:
    opstore_url = env_or_default("OP_OPSTORE_URL", default_opstore_url())
    return {
        "maintenance_config": MaintenanceConfigResource(
            plant_path=env_or_default("OP_MAINTENANCE_PLANT_PATH", ""),
            policy_path=env_or_default("OP_MAINTENANCE_POLICY_PATH", ""),
        ),
        "maintenance_system": MaintenanceSystemResource(
            opstore_url=opstore_url, webhook_url=env_or_default("OP_MAINTENANCE_WEBHOOK_URL", "")
        ),
        "notifier": NotifierResource(
            opstore_url=opstore_url, webhook_url=env_or_default("OP_MAINTENANCE_NOTIFY_URL", "")
        ),
    }
