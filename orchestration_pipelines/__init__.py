"""orchestration_pipelines: an AI-orchestration platform built on Dagster.

The platform core lives here (definitions, jobs, schedules, CLI, governance); each workflow's
domain logic is a plain-Python subpackage (``orchestration_pipelines.fraud``) that the thin Dagster
layers in ``assets/``, ``sensors/`` and ``resources/`` wire together.
"""
