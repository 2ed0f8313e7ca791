"""Predictive maintenance: plant configuration, readings contract, simulation, rolling features,
anomaly scores per machine type, alerts with noise control, work-order proposals and evaluation.

Plain functions on DataFrames; the Dagster layer wires them into daily partitions.
"""
