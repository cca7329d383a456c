"""Airflow's side of server/tests/routes_lifecycle.rs: Airflow 3.3.2's own models
reading the rows the server wrote, on the same database (the environment is the
server's: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, AIRFLOW__CORE__FERNET_KEY, ...).
Prints one JSON document.

    lifecycle_side.py trigger TI_ID        -> the TI's trigger, as the triggerer loads it
    lifecycle_side.py reschedules TI_ID    -> TaskReschedule rows of the TI
    lifecycle_side.py history DAG RUN TASK -> TaskInstanceHistory rows and the live TI
    lifecycle_side.py rtif DAG RUN TASK    -> RenderedTaskInstanceFields.get_templated_fields
    lifecycle_side.py asset-events DAG RUN -> AssetEvent rows the run's tasks emitted,
                                              and the AssetDagRunQueue
"""

import json
import sys
import uuid
from types import SimpleNamespace

from sqlalchemy import select

from airflow.models.asset import AssetDagRunQueue, AssetEvent
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskinstancehistory import TaskInstanceHistory
from airflow.models.taskreschedule import TaskReschedule
from airflow.models.trigger import Trigger
from airflow.utils.session import create_session


def iso(value):
    return None if value is None else value.isoformat()


def main(argv):
    command, args = argv[1], argv[2:]
    with create_session() as session:
        if command == "trigger":
            (ti_id,) = args
            ti = session.get(TaskInstance, uuid.UUID(ti_id))
            triggers = Trigger.bulk_fetch([ti.trigger_id], session=session)
            trigger = triggers[ti.trigger_id]
            print(
                json.dumps(
                    {
                        "id": trigger.id,
                        "classpath": trigger.classpath,
                        "kwargs": {
                            k: (iso(v) if hasattr(v, "isoformat") else v)
                            for k, v in trigger.kwargs.items()
                        },
                        "kwarg_types": {k: type(v).__name__ for k, v in trigger.kwargs.items()},
                        "queue": trigger.queue,
                        "created_date": iso(trigger.created_date),
                        "task_instance": str(trigger.task_instance.id),
                        "ti_state": ti.state,
                        "next_method": ti.next_method,
                        "next_kwargs": ti.next_kwargs,
                        "trigger_timeout": iso(ti.trigger_timeout),
                    }
                )
            )
        elif command == "reschedules":
            (ti_id,) = args
            rows = session.scalars(
                TaskReschedule.stmt_for_task_instance(
                    SimpleNamespace(id=uuid.UUID(ti_id)), descending=False
                )
            ).all()
            print(
                json.dumps(
                    [
                        {
                            "start_date": iso(r.start_date),
                            "end_date": iso(r.end_date),
                            "duration": r.duration,
                            "reschedule_date": iso(r.reschedule_date),
                        }
                        for r in rows
                    ]
                )
            )
        elif command == "history":
            dag_id, run_id, task_id = args
            rows = session.scalars(
                select(TaskInstanceHistory).where(
                    TaskInstanceHistory.dag_id == dag_id,
                    TaskInstanceHistory.run_id == run_id,
                    TaskInstanceHistory.task_id == task_id,
                )
            ).all()
            live = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.run_id == run_id,
                    TaskInstance.task_id == task_id,
                )
            ).one()
            print(
                json.dumps(
                    {
                        "history": [
                            {
                                "task_instance_id": str(h.task_instance_id),
                                "state": h.state,
                                "try_number": h.try_number,
                                "end_date": iso(h.end_date),
                                "duration": h.duration,
                                "retry_reason": h.retry_reason,
                                "hostname": h.hostname,
                            }
                            for h in rows
                        ],
                        "live": {
                            "id": str(live.id),
                            "state": live.state,
                            "try_number": live.try_number,
                            "retry_delay_override": live.retry_delay_override,
                        },
                    }
                )
            )
        elif command == "rtif":
            dag_id, run_id, task_id = args
            key = SimpleNamespace(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1)
            print(json.dumps(RenderedTaskInstanceFields.get_templated_fields(key, session=session)))
        elif command == "asset-events":
            dag_id, run_id = args
            events = session.scalars(
                select(AssetEvent)
                .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
                .order_by(AssetEvent.id)
            ).all()
            queue = session.scalars(select(AssetDagRunQueue)).all()
            event_assets = {e.asset_id for e in events}
            print(
                json.dumps(
                    {
                        "events": [
                            {
                                "asset": [e.asset.name, e.asset.uri],
                                "extra": e.extra,
                                "source_task_id": e.source_task_id,
                                "source_map_index": e.source_map_index,
                                "partition_key": e.partition_key,
                                "aliases": sorted(a.name for a in e.source_aliases),
                            }
                            for e in events
                        ],
                        "queued": sorted(
                            [q.asset.name, q.target_dag_id]
                            for q in queue
                            if q.asset_id in event_assets
                        ),
                    }
                )
            )
        else:
            raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
