"""A task that fails once and succeeds on retry; branching and short-circuit skips."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import dag, task


@dag(dag_id="e2e_retry", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_retry():
    @task(retries=2, retry_delay=timedelta(seconds=1))
    def flaky(ti=None):
        if ti.try_number == 1:
            raise RuntimeError("first try fails on purpose")
        return ti.try_number

    @task
    def after(value):
        return value * 10

    after(flaky())


@dag(dag_id="e2e_branching", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_branching():
    @task.branch
    def choose():
        return "chosen"

    @task
    def chosen():
        return "took the branch"

    @task
    def not_chosen():
        return "never"

    skipped_after = EmptyOperator(task_id="after_not_chosen")
    joined = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")

    b = choose()
    c, n = chosen(), not_chosen()
    b >> [c, n]
    n >> skipped_after
    [c, skipped_after] >> joined

    gate = ShortCircuitOperator(task_id="gate", python_callable=lambda: False)
    behind_gate = EmptyOperator(task_id="behind_gate")
    gate >> behind_gate


e2e_retry()
e2e_branching()
