"""Airflow's side of the round-trip tests (server/tests/airflow_roundtrip.rs).

Runs Airflow 3.3.2's own models on the database the server under test uses; the
environment (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, AIRFLOW__CORE__FERNET_KEY, ...)
is the server's. Prints one JSON document.

    airflow_side.py ti-ids DAG_ID RUN_ID           -> {"task_id": "ti uuid", ...}
    airflow_side.py xcom-get DAG RUN TASK KEY      -> the value Airflow's model reads
    airflow_side.py xcom-set DAG RUN TASK KEY JSON -> stores JSON as the Execution API does
"""

import json
import sys

from sqlalchemy import select

from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session


def main(argv):
    command, args = argv[1], argv[2:]
    with create_session() as session:
        if command == "ti-ids":
            dag_id, run_id = args
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.id).where(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
                )
            ).all()
            print(json.dumps({task_id: str(ti_id) for task_id, ti_id in rows}))
        elif command == "xcom-get":
            dag_id, run_id, task_id, key = args
            row = session.scalars(
                XComModel.get_many(run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id)
            ).first()
            if row is None:
                raise SystemExit(f"no xcom {dag_id}/{run_id}/{task_id}/{key}")
            print(json.dumps({"value": XComModel.deserialize_value(row)}))
        elif command == "xcom-set":
            dag_id, run_id, task_id, key, value = args
            XComModel.set(
                key,
                json.loads(value),
                dag_id=dag_id,
                task_id=task_id,
                run_id=run_id,
                serialize=False,
                session=session,
            )
            print(json.dumps({"ok": True}))
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
