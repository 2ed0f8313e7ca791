"""Dagster resources: the models and connectors every workflow shares."""
