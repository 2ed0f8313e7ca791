"""Dagster sensors: what starts each workflow."""
