"""A DAG for server/tests/routes_lifecycle.rs: `fail_fast`, with a teardown task."""

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(
    "lifecycle_fail_fast",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    fail_fast=True,
):
    fails = EmptyOperator(task_id="fails")
    sibling = EmptyOperator(task_id="sibling")
    later = EmptyOperator(task_id="later")
    done = EmptyOperator(task_id="done")
    cleanup = EmptyOperator(task_id="cleanup").as_teardown()
    [fails, sibling, done] >> later >> cleanup
