"""Dynamic task mapping over an upstream list, with a reducer and a map_index_template."""

from __future__ import annotations

import pendulum

from airflow.sdk import dag, task


@dag(dag_id="e2e_mapping", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_mapping():
    @task
    def numbers():
        return [1, 2, 3, 4, 5]

    @task(map_index_template="square of {{ task.op_kwargs['n'] }}")
    def square(n):
        return n * n

    @task
    def total(values):
        return sum(values)

    @task
    def labels():
        return ["a", "b", "c"]

    @task
    def shout(label, suffix):
        return label.upper() + suffix

    total(square.expand(n=numbers()))
    shout.partial(suffix="!").expand(label=labels())


e2e_mapping()
