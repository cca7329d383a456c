"""Seeds an Airflow 3.3 metadata database (already `airflow db migrate`d) for .ci/bench-capacity.

One DAG run of `capacity_dag` with N task instances `t00000` ... in state RUNNING, each with the
hostname `capacity-host` and its own pid (100000 + k), as a worker's `/run` leaves them, so a
heartbeat from that hostname and pid takes the normal path on both servers. Besides them, a
finished task instance `upstream` with an XCom `return_value` (what the simulated tasks pull),
a Fernet-encrypted variable `capacity_var` and a connection `capacity_conn`.

Usage: python bench-capacity-setup.py N OUT_FILE
(AIRFLOW_HOME, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and AIRFLOW__CORE__FERNET_KEY name the
database and key.) Writes one line per task instance to OUT_FILE: `id task_id pid`.
"""

import json
import sys
import uuid
from datetime import datetime, timezone

from sqlalchemy import insert, select

from airflow.models.connection import Connection
from airflow.models.dag import DagModel
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.variable import Variable
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

n, out = int(sys.argv[1]), sys.argv[2]
now = datetime.now(timezone.utc)
dag_id, run_id, hostname = "capacity_dag", "capacity_run", "capacity-host"


def ti_row(task_id, state, pid):
    return dict(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag_id,
        run_id=run_id,
        map_index=-1,
        try_number=1,
        pool="default_pool",
        pool_slots=1,
        queue="default",
        priority_weight=1,
        state=state,
        hostname=hostname,
        unixname="capacity",
        pid=pid,
        start_date=now,
        last_heartbeat_at=now,
    )


rows = [ti_row(f"t{k:05}", "running", 100000 + k) for k in range(n)]
with create_session() as session:
    session.execute(insert(DagBundleModel.__table__).values(name="capacity_bundle", active=True))
    session.execute(
        insert(DagModel.__table__).values(
            dag_id=dag_id,
            is_paused=False,
            is_stale=False,
            bundle_name="capacity_bundle",
            timetable_type="",
            max_active_tasks=n + 1,
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
    session.execute(insert(TaskInstance.__table__), [ti_row("upstream", "success", None)])
    for start in range(0, n, 5000):
        session.execute(insert(TaskInstance.__table__), rows[start : start + 5000])
    dag_run_id = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    # A JSON value, as the Execution API stores what a worker pushes.
    session.execute(
        insert(XComModel.__table__).values(
            dag_run_id=dag_run_id,
            task_id="upstream",
            map_index=-1,
            key="return_value",
            dag_id=dag_id,
            run_id=run_id,
            value={"rows": 1234, "path": "s3://bucket/capacity/part-0000.parquet"},
            timestamp=now,
        )
    )
    session.add(
        Connection(
            conn_id="capacity_conn",
            conn_type="postgres",
            host="db.example.com",
            login="capacity",
            password="s3cret",
            schema="warehouse",
            port=5432,
        )
    )
Variable.set("capacity_var", json.dumps({"threshold": 0.75, "region": "eu-west-1"}))
with open(out, "w") as f:
    for r in rows:
        f.write(f"{r['id']} {r['task_id']} {r['pid']}\n")
print(f"seeded {n} running task instances of {dag_id}/{run_id}", file=sys.stderr)
