"""Resources for versioned models and the policies that turn their scores into decisions."""

from __future__ import annotations

from dagster import ConfigurableResource

from orchestration_pipelines.fraud.policy import FraudPolicy, load_policy
from orchestration_pipelines.model_registry import ModelRegistry
from orchestration_pipelines.settings import paths
from resources.env import env_or_default


class ModelRegistryResource(ConfigurableResource):
    """Where model versions and their promoted ``CURRENT`` pointers live (``OP_MODEL_DIR``)."""

    root: str

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.root)


class FraudPolicyResource(ConfigurableResource):
    """The fraud policy file; empty means the version packaged with the code."""

    path: str = ""

    def load(self) -> FraudPolicy:
        return load_policy(self.path or None)


def model_registry_resource() -> ModelRegistryResource:
    return ModelRegistryResource(root=env_or_default("OP_MODEL_DIR", str(paths().models)))


def fraud_policy_resource() -> FraudPolicyResource:
    return FraudPolicyResource(path=env_or_default("OP_FRAUD_POLICY_PATH", ""))
