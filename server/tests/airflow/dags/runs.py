"""DAGs for server/tests/routes_runs.rs: Airflow serializes them (`airflow dags reserialize`);
runs triggered through the server are compared with runs Airflow's own `trigger_dag` creates.

- `<prefix>`: no schedule, retries and a start date in default_args, params, a task with its
  own pool slots, queue and priority, a mapped task over a literal (three task instances), a
  mapped task over an upstream XCom (one, map index -1), an `upstream` weight rule.
- `<prefix>_cron`: a daily schedule (its data interval needs Python).

`RUNS_DAG_PREFIX` (default `runs`) names the DAGs, so tests sharing one PostgreSQL database
each get their own.
"""

import os
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, task

prefix = os.environ.get("RUNS_DAG_PREFIX", "runs")

with DAG(
    prefix,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 2, "start_date": datetime(2024, 1, 1)},
    params={"p": 1, "q": Param("x", type="string")},
):
    a = EmptyOperator(task_id="a", pool_slots=2, queue="q1", priority_weight=3)

    @task
    def double(x):
        return 2 * x

    @task
    def numbers():
        return [1, 2]

    b = EmptyOperator(task_id="b", weight_rule="upstream")
    a >> double.expand(x=[1, 2, 3]) >> b
    double.override(task_id="again").expand(x=numbers()) >> b

with DAG(f"{prefix}_cron", schedule="@daily", start_date=datetime(2024, 1, 1), catchup=False):
    EmptyOperator(task_id="only")
