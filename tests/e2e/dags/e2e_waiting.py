"""A sensor in reschedule mode, a deferrable operator resumed by the triggerer, and
human-in-the-loop resolved by its timeout default.

Waits are long enough that the scheduler sees a worker's exit before the task is queued
again: Airflow 3.3.2's scheduler fails a task whose earlier exit it processes after
re-queueing the same try (scheduler_job_runner._process_executor_events), a race of its own
that a reschedule or trigger of a few seconds can hit on a busy 2-core machine, whichever API
server the workers use."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.sensors.python import PythonSensor
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, Variable, dag, task


def _poke():
    count = int(Variable.get("e2e_pokes", default="0")) + 1
    Variable.set("e2e_pokes", str(count))
    return count >= 3


class DeferThenReturn(BaseOperator):
    """Defers to a trigger, then returns what the trigger's event carried."""

    def execute(self, context):
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=8)),
            method_name="resume",
            kwargs={"carried": {"n": 2**63 + 5, "s": "kept"}},
        )

    def resume(self, context, event=None, carried=None):
        return {"carried": carried, "event_was_set": event is not None}


@dag(dag_id="e2e_waiting", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_waiting():
    PythonSensor(task_id="reschedule_sensor", python_callable=_poke, mode="reschedule", poke_interval=12, timeout=300)

    # Ten seconds after the task starts: it defers, and the triggerer wakes it.
    DateTimeSensorAsync(
        task_id="deferred_sensor",
        target_time="{{ (macros.datetime.utcnow() + macros.timedelta(seconds=10)).isoformat() }}",
    )

    DeferThenReturn(task_id="defer_then_return")

    hitl = HITLOperator(
        task_id="hitl",
        subject="Ship it?",
        options=["yes", "no"],
        defaults=["yes"],
        response_timeout=timedelta(seconds=3),
    )

    @task
    def after_hitl(answer):
        return answer["chosen_options"]

    after_hitl(hitl.output)


e2e_waiting()
