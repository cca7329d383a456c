"""The deployment-scale benchmark's DAG (tests/e2e/bench_mapped.py): one task makes a list of
`BENCH_MAPPED_TASKS` numbers (environment, default 500), a mapped task squares each, a reducer
sums them."""

from __future__ import annotations

import os

import pendulum

from airflow.sdk import dag, task

N = int(os.environ.get("BENCH_MAPPED_TASKS", "500"))


@dag(dag_id="bench_mapped", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False, max_active_tasks=64)
def bench_mapped():
    @task
    def numbers():
        return list(range(N))

    @task(max_active_tis_per_dag=64)
    def square(n):
        return n * n

    @task
    def total(values):
        return sum(values)

    total(square.expand(n=numbers()))


bench_mapped()
