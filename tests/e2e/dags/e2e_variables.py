"""Variables and connections from tasks and templates."""

from __future__ import annotations

import pendulum

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseHook, Variable, dag, task


def _templated(value, host, json_field):
    assert value == "plain value", value
    assert host == "db.example.com", host
    assert json_field == "nested", json_field
    return [value, host, json_field]


@dag(dag_id="e2e_variables", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_variables():
    @task
    def read_variables():
        plain = Variable.get("e2e_plain")
        parsed = Variable.get("e2e_json", deserialize_json=True)
        missing = Variable.get("e2e_missing_variable", default="fallback")
        return {"plain": plain, "json": parsed, "missing": missing}

    @task
    def write_variable():
        Variable.set("e2e_written", "written by a task")
        Variable.set("e2e_written_json", {"n": 2**64 - 1}, serialize_json=True)
        return [Variable.get("e2e_written"), Variable.get("e2e_written_json", deserialize_json=True)]

    @task
    def read_connection():
        conn = BaseHook.get_connection("e2e_db")
        return {
            "conn_type": conn.conn_type,
            "host": conn.host,
            "login": conn.login,
            "password": conn.password,
            "port": conn.port,
            "schema": conn.schema,
            "extra": conn.extra_dejson,
        }

    templated = PythonOperator(
        task_id="templated",
        python_callable=_templated,
        op_kwargs={
            "value": "{{ var.value.e2e_plain }}",
            "host": "{{ conn.e2e_db.host }}",
            "json_field": "{{ var.json.e2e_json.field }}",
        },
    )

    read_variables() >> write_variable() >> read_connection() >> templated


e2e_variables()
