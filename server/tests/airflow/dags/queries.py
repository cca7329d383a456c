"""DAGs for server/tests/routes_queries.rs: Airflow serializes them (`airflow dags reserialize`)
and creates their runs; the server answers the read-only routes from what Airflow wrote.

- `<prefix>`: a task group with a nested group and a mapped task, asset inlets and outlets,
  a setup/teardown pair.
- `<prefix>_fail_fast`: `fail_fast=True`, no teardown (Airflow refuses the combination).

`QUERIES_DAG_PREFIX` (default `queries`) names the DAGs and their assets, so tests sharing
one PostgreSQL database each get their own.
"""

import os
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, TaskGroup, task

prefix = os.environ.get("QUERIES_DAG_PREFIX", "queries")
raw = Asset(name=f"{prefix}_raw", uri=f"file:///tmp/{prefix}/raw.csv")
clean = Asset(name=f"{prefix}_clean", uri=f"s3://bucket/{prefix}/clean.parquet", group="tables")
retired = Asset(name=f"{prefix}_retired", uri=f"file:///tmp/{prefix}/retired")

with DAG(prefix, schedule=None, start_date=datetime(2024, 1, 1), catchup=False):
    setup = EmptyOperator(task_id="setup").as_setup()
    extract = EmptyOperator(task_id="extract", inlets=[raw], outlets=[clean])
    with TaskGroup("group") as group:
        first = EmptyOperator(task_id="first")
        with TaskGroup("inner"):
            second = EmptyOperator(task_id="second", outlets=[retired])

        @task
        def double(x):
            return 2 * x

        first >> second >> double.expand(x=[1, 2, 3])
    teardown = EmptyOperator(task_id="teardown").as_teardown(setups=setup)
    setup >> extract >> group >> teardown

with DAG(
    f"{prefix}_fail_fast",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    fail_fast=True,
):
    EmptyOperator(task_id="only")
