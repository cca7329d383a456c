"""Airflow's side of server/tests/routes_xcoms.rs and routes_runs.rs.

Runs Airflow 3.3.2's own code (its models, and its Execution API route functions called
directly with a session) on the database the server under test uses; the environment
(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, ...) is the server's. Prints one JSON document.

    runs_side.py xcom-routes DAG RUN TASK KEY CASES -> Airflow's answer to each case
    runs_side.py xcom-set DAG RUN TASK KEY MAP_INDEX JSON
    runs_side.py task-map DAG RUN TASK MAP_INDEX    -> {"length", "keys"} or null
"""

import json
import sys

from fastapi import HTTPException, Response
from sqlalchemy import select

from airflow.models.taskmap import TaskMap
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session


def answer(call):
    """A route function's result as JSON, or its HTTPException as {"status", "detail"}."""
    try:
        return {"ok": call()}
    except HTTPException as e:
        return {"status": e.status_code, "detail": e.detail}


def xcom_routes(session, dag_id, run_id, task_id, key, cases):
    from airflow.api_fastapi.execution_api.routes import xcoms

    out = []
    for case in cases:
        route = case["route"]
        if route == "slice":
            params = xcoms.GetXComSliceFilterParams(
                start=case.get("start"),
                stop=case.get("stop"),
                step=case.get("step"),
                include_prior_dates=case.get("include_prior_dates", False),
            )
            out.append(
                answer(
                    lambda: xcoms.get_mapped_xcom_by_slice(
                        dag_id, run_id, task_id, key, params, session
                    ).root
                )
            )
        elif route == "item":
            out.append(
                answer(
                    lambda: xcoms.get_mapped_xcom_by_index(
                        dag_id, run_id, task_id, key, case["offset"], session
                    ).root
                )
            )
        elif route == "get":
            params = xcoms.GetXcomFilterParams(
                map_index=case.get("map_index", -1),
                include_prior_dates=case.get("include_prior_dates", False),
                offset=case.get("offset"),
            )
            out.append(
                answer(
                    lambda: xcoms.get_xcom(dag_id, run_id, task_id, key, session, params).model_dump()
                )
            )
        elif route == "head":
            response = Response()
            query = XComModel.get_many(run_id=run_id, key=key, task_ids=task_id, dag_ids=dag_id)
            xcoms.head_xcom(response, session, query)
            out.append({"ok": response.headers["Content-Range"]})
        else:
            raise SystemExit(f"unknown route {route}")
    return out


def dag_run_routes(session, cases):
    """Airflow's dag-run and dag route functions, called with a session."""
    from airflow.api_fastapi.execution_api.routes import dag_runs, dags
    from airflow._shared.timezones import timezone

    def when(text):
        return None if text is None else timezone.parse(text)

    out = []
    for case in cases:
        route = case["route"]
        if route == "get":
            call = lambda: dag_runs.get_dag_run(case["dag_id"], case["run_id"], session).model_dump(mode="json")
        elif route == "state":
            call = lambda: dag_runs.get_dagrun_state(case["dag_id"], case["run_id"], session).model_dump(mode="json")
        elif route == "count":
            call = lambda: dag_runs.get_dr_count(
                case["dag_id"],
                session,
                logical_dates=[when(d) for d in case["logical_dates"]] if case.get("logical_dates") else None,
                run_ids=case.get("run_ids"),
                states=case.get("states"),
            )
        elif route == "previous":
            def call():
                run = dag_runs.get_previous_dagrun(
                    case["dag_id"], when(case["logical_date"]), session, case.get("state")
                )
                return None if run is None else run.model_dump(mode="json")
        elif route == "dag":
            call = lambda: dags.get_dag(case["dag_id"], session).model_dump(mode="json")
        else:
            raise SystemExit(f"unknown route {route}")
        out.append(answer(call))
    return out


def trigger(session, dag_id, run_id, logical_date, conf):
    """Airflow's own trigger, as its Execution API route calls it."""
    from airflow._shared.timezones import timezone
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    trigger_dag(
        dag_id=dag_id,
        run_id=run_id,
        run_type=DagRunType.OPERATOR_TRIGGERED,
        conf=json.loads(conf),
        logical_date=None if logical_date == "-" else timezone.parse(logical_date),
        run_after=None,
        triggered_by=DagRunTriggeredByType.OPERATOR,
        triggering_user_name=None,
        replace_microseconds=False,
        note="from airflow",
        session=session,
    )


def run_rows(session, dag_id, run_id, old_ids="[]"):
    """A run and its task instances as Airflow's models read them (`old_ids`: task instance
    ids from before a clear, to tell which rows kept theirs)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstancehistory import TaskInstanceHistory

    old_ids = set(json.loads(old_ids))

    runs = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)
    if not runs:
        return None
    dr = runs[0]
    tis = sorted(dr.get_task_instances(session=session), key=lambda t: (t.task_id, t.map_index))
    out = {
        "state": dr.state,
        "run_type": dr.run_type,
        "triggered_by": dr.triggered_by.name if dr.triggered_by else None,
        "conf": dr.conf,
        "logical_date": dr.logical_date.isoformat() if dr.logical_date else None,
        "data_interval_is_run_after": dr.data_interval_start == dr.run_after == dr.data_interval_end,
        "queued_at_set": dr.queued_at is not None,
        "start_date": dr.start_date,
        "clear_number": dr.clear_number,
        "note": dr.note,
        "bundle_version": dr.bundle_version,
        "log_template_id": dr.log_template_id,
        "created_dag_version_id": str(dr.created_dag_version_id),
        "carrier_keys": sorted((dr.context_carrier or {}).keys()),
        "span_status": dr.span_status,
        "last_scheduling_decision": dr.last_scheduling_decision,
        "history": sorted(
            [h.task_id, h.map_index, h.try_number, h.state, h.end_date is not None, str(h.task_instance_id) in old_ids]
            for h in session.scalars(
                select(TaskInstanceHistory).where(
                    TaskInstanceHistory.dag_id == dag_id, TaskInstanceHistory.run_id == run_id
                )
            )
        ),
        "tis": [
            {
                "task_id": t.task_id,
                "map_index": t.map_index,
                "state": t.state,
                "try_number": t.try_number,
                "max_tries": t.max_tries,
                "hostname": t.hostname,
                "pool": t.pool,
                "pool_slots": t.pool_slots,
                "queue": t.queue,
                "priority_weight": t.priority_weight,
                "operator": t.operator,
                "custom_operator_name": t.custom_operator_name,
                "executor": t.executor,
                "executor_config": t.executor_config,
                "task_display_name": t.task_display_name,
                "dag_version_id": str(t.dag_version_id),
                "carrier_keys": sorted((t.context_carrier or {}).keys()),
                "span_status": t.span_status,
                "end_date_set": t.end_date is not None,
                "duration_set": t.duration is not None,
                "next_method": t.next_method,
                "next_kwargs": t.next_kwargs,
                "external_executor_id": t.external_executor_id,
                "id_is_old": str(t.id) in old_ids,
            }
            for t in tis
        ],
    }
    # What the scheduler would add for this run: nothing is missing.
    before = len(tis)
    dr.dag = None
    from airflow.models.dagbag import DBDagBag

    dr.dag = DBDagBag().get_dag_for_run(dr, session=session)
    dr.verify_integrity(session=session, dag_version_id=dr.created_dag_version_id)
    session.flush()
    out["verify_integrity_added"] = len(dr.get_task_instances(session=session)) - before
    session.rollback()
    return out


def main(argv):
    command, args = argv[1], argv[2:]
    with create_session() as session:
        if command == "xcom-routes":
            dag_id, run_id, task_id, key, cases = args
            print(json.dumps(xcom_routes(session, dag_id, run_id, task_id, key, json.loads(cases))))
        elif command == "dag-run-routes":
            print(json.dumps(dag_run_routes(session, json.loads(args[0]))))
        elif command == "trigger":
            dag_id, run_id, logical_date, conf = args
            trigger(session, dag_id, run_id, logical_date, conf)
            print(json.dumps({"ok": True}))
        elif command == "clear":
            from airflow.api_fastapi.execution_api.routes import dag_runs
            from airflow.models.dagbag import DBDagBag

            dag_id, run_id = args
            print(json.dumps(answer(lambda: dag_runs.clear_dag_run(dag_id, run_id, session, DBDagBag()))))
        elif command == "ti-ids":
            from airflow.models.taskinstance import TaskInstance

            dag_id, run_id = args
            print(json.dumps([str(i) for i in session.scalars(
                select(TaskInstance.id).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            )]))
        elif command == "run-rows":
            print(json.dumps(run_rows(session, *args), default=str))
        elif command == "xcom-set":
            dag_id, run_id, task_id, key, map_index, value = args
            XComModel.set(
                key,
                json.loads(value),
                dag_id=dag_id,
                task_id=task_id,
                run_id=run_id,
                map_index=int(map_index),
                serialize=False,
                session=session,
            )
            print(json.dumps({"ok": True}))
        elif command == "task-map":
            dag_id, run_id, task_id, map_index = args
            row = session.scalar(
                select(TaskMap).where(
                    TaskMap.dag_id == dag_id,
                    TaskMap.run_id == run_id,
                    TaskMap.task_id == task_id,
                    TaskMap.map_index == int(map_index),
                )
            )
            print(json.dumps(None if row is None else {"length": row.length, "keys": row.keys}))
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
