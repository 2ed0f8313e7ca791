"""Evaluates the code location's automation conditions from the moment it loads.

Dagster's implicit ``default_automation_condition_sensor`` starts stopped until someone switches it on
in the UI; this sensor covers every asset instead and starts running, so e.g. the ``llm_ops`` refresh
and its budget check happen without a click.
"""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

automation_condition_sensor = AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches assets whose automation condition is met, e.g. the llm_ops refresh every 15 min.",
)
