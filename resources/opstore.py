"""Resource for the operational store (audit log, cost ledger, review queue)."""

from __future__ import annotations

from dagster import ConfigurableResource

from orchestration_pipelines.opstore import OpStore
from orchestration_pipelines.settings import default_opstore_url
from resources.env import env_or_default


class OperationalStoreResource(ConfigurableResource):
    """``OP_OPSTORE_URL``: ``sqlite:///...`` (embedded default) or ``postgresql://...``."""

    url: str

    def store(self) -> OpStore:
        return OpStore(self.url)


def opstore_resource() -> OperationalStoreResource:
    return OperationalStoreResource(url=env_or_default("OP_OPSTORE_URL", default_opstore_url()))
