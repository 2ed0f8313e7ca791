"""A tiny code location for the run-monitoring test: one step in the warehouse pool that keeps its slot
until a release file appears, run in the run worker's own process (so killing the worker kills it)."""

import time
from pathlib import Path

from dagster import Config, Definitions, in_process_executor, job, op

from resources.warehouse import WAREHOUSE_POOL


class HoldConfig(Config):
    release_file: str


@op(pool=WAREHOUSE_POOL)
def hold_warehouse_slot(config: HoldConfig) -> None:
    while not Path(config.release_file).exists():
        time.sleep(0.2)


@job(executor_def=in_process_executor)
def hold_slot_job():
    hold_warehouse_slot()


defs = Definitions(jobs=[hold_slot_job])
