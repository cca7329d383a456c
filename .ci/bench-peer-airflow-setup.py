"""Seeds an Airflow 3.3 metadata DB (already migrated) for the peer benchmark.

Creates a dag bundle, a dag, a dag run, one task instance in state RUNNING with
hostname/pid set (so heartbeats take Airflow's fast path), and a variable.
Usage: python bench-peer-airflow-setup.py TI_UUID HOSTNAME PID VAR_KEY VAR_VALUE
(AIRFLOW_HOME / AIRFLOW__DATABASE__SQL_ALCHEMY_CONN name the database.)
"""

import sys
import uuid
from datetime import datetime, timezone

from sqlalchemy import insert

from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.variable import Variable
from airflow.utils.session import create_session

ti_id, hostname, pid, var_key, var_value = sys.argv[1:6]
now = datetime.now(timezone.utc)
dag_id, run_id = "bench_dag", "bench_run"

with create_session() as session:
    session.execute(insert(DagBundleModel.__table__).values(name="bench_bundle", active=True))
    session.execute(
        insert(DagModel.__table__).values(
            dag_id=dag_id,
            is_paused=False,
            is_stale=False,
            bundle_name="bench_bundle",
            timetable_type="",
            max_active_tasks=16,
            max_consecutive_failed_dag_runs=0,
            has_task_concurrency_limits=False,
        )
    )
    session.execute(
        insert(DagRun.__table__).values(
            dag_id=dag_id,
            run_id=run_id,
            run_type="manual",
            run_after=now,
            logical_date=now,
            start_date=now,
            state="running",
        )
    )
    session.execute(
        insert(TaskInstance.__table__).values(
            id=uuid.UUID(ti_id),
            task_id="bench_task",
            dag_id=dag_id,
            run_id=run_id,
            map_index=-1,
            try_number=1,
            pool="default_pool",
            pool_slots=1,
            state="running",
            hostname=hostname,
            pid=int(pid),
            start_date=now,
            last_heartbeat_at=now,
        )
    )
Variable.set(var_key, var_value)
print("seeded", ti_id)
