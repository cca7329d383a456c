"""XComs: @task and PythonOperator return values, multiple_outputs, xcom_push with a key,
templated xcom_pull, a value of a few MB, integers beyond signed 64 bits (the Task SDK's msgpack channel
between task and supervisor carries at most 2**64 - 1 and at least -2**63), many XComs from one task."""

from __future__ import annotations

import hashlib

import pendulum

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import dag, task

BIG_ITEMS = 120_000  # ~3 MB of JSON


def _push_keyed(ti):
    ti.xcom_push(key="color", value={"name": "blue", "rgb": [0, 0, 255]})
    return "operator-return"


def _pull_templated(pulled, keyed):
    # Templates render to strings: the worker pulled both through the Execution API.
    assert pulled == "operator-return", pulled
    assert keyed == "blue", keyed
    return f"{pulled}+{keyed}"


@dag(dag_id="e2e_xcoms", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def e2e_xcoms():
    @task
    def returns_dict():
        return {"a": 1, "b": [1, 2, 3], "c": None, "d": "ünïcode"}

    @task(multiple_outputs=True)
    def several():
        return {"left": 10, "right": 32}

    @task
    def add(left, right):
        return left + right

    keyed = PythonOperator(task_id="push_keyed", python_callable=_push_keyed)

    pull = PythonOperator(
        task_id="pull_templated",
        python_callable=_pull_templated,
        op_kwargs={
            "pulled": "{{ ti.xcom_pull(task_ids='push_keyed') }}",
            "keyed": "{{ ti.xcom_pull(task_ids='push_keyed', key='color')['name'] }}",
        },
    )

    @task
    def big_value():
        return ["item-%06d" % i for i in range(BIG_ITEMS)]

    @task
    def check_big(items):
        assert len(items) == BIG_ITEMS, len(items)
        return hashlib.sha256("\n".join(items).encode()).hexdigest()

    @task
    def huge_ints():
        return {"u64max": 2**64 - 1, "over_i64": 2**63 + 1, "i64min": -(2**63), "small": 3}

    @task
    def check_ints(values):
        assert values["u64max"] == 2**64 - 1, values
        assert values["over_i64"] == 2**63 + 1, values
        assert values["i64min"] == -(2**63), values
        assert isinstance(values["over_i64"], int)
        return str(values["u64max"])

    @task
    def many_xcoms(ti=None):
        for i in range(200):
            ti.xcom_push(key=f"k{i:03d}", value=i * i)
        return 200

    @task
    def read_many(count, ti=None):
        total = sum(ti.xcom_pull(task_ids="many_xcoms", key=f"k{i:03d}") for i in range(count))
        assert total == sum(i * i for i in range(200)), total
        return total

    returns_dict()
    s = several()
    add(s["left"], s["right"])
    keyed >> pull
    check_big(big_value())
    check_ints(huge_ints())
    read_many(many_xcoms())


e2e_xcoms()
