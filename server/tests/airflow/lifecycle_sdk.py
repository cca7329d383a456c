"""The Task SDK 1.3.2's own client and task runner driving the lifecycle routes of the
server under test (server/tests/routes_lifecycle.rs). Every SDK call's body is built by
the SDK itself (`_defer_task`, `RescheduleTask`, `SkipDownstreamTasks`, ...). Prints one
JSON document of what the SDK got back.

    lifecycle_sdk.py BASE_URL DEFER_ID DEFER_TOKEN RESCHEDULE_ID RESCHEDULE_TOKEN \
        SKIP_ID SKIP_TOKEN RETRY_ID RETRY_TOKEN
"""

import json
import os
import sys
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import structlog

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.api.client import Client
from airflow.sdk.api.datamodels._generated import AssetProfile
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.execution_time.comms import RescheduleTask, SkipDownstreamTasks
from airflow.sdk.execution_time.task_runner import _defer_task


def started(base_url, ti_id, token):
    client = Client(base_url=base_url, token=token)
    client.task_instances.start(uuid.UUID(ti_id), os.getpid(), datetime.now(timezone.utc))
    return client, uuid.UUID(ti_id)


def main(argv):
    base_url = argv[1]
    defer_id, defer_token, resched_id, resched_token, skip_id, skip_token, retry_id, retry_token = argv[2:]
    out = {}
    log = structlog.get_logger()

    # Deferral, as the task runner builds it from a TaskDeferred.
    client, ti_id = started(base_url, defer_id, defer_token)
    client.task_instances.set_rtif(ti_id, {"bash_command": "sleep 1", "password": "hunter2"})
    client.task_instances.set_rendered_map_index(ti_id, "first")
    deferred = TaskDeferred(
        trigger=DateTimeTrigger(moment=datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)),
        method_name="execute_complete",
        kwargs={"attempt": 1, "when": datetime(2026, 1, 1, 9, 0, tzinfo=timezone.utc)},
        timeout=timedelta(minutes=5),
    )
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", task=SimpleNamespace(queue="default"))
    msg, state = _defer_task(deferred, ti, log)
    client.task_instances.defer(ti_id, msg)
    out["deferred"] = state

    # A sensor's reschedule, and the start date the SDK reads back.
    client, ti_id = started(base_url, resched_id, resched_token)
    now = datetime.now(timezone.utc)
    client.task_instances.reschedule(
        ti_id, RescheduleTask(reschedule_date=now + timedelta(minutes=1), end_date=now)
    )
    out["reschedule_start"] = client.task_instances.get_reschedule_start_date(ti_id).start_date.isoformat()

    # A branch: skip the other branches, then succeed with an asset outlet.
    client, ti_id = started(base_url, skip_id, skip_token)
    client.task_instances.skip_downstream_tasks(ti_id, SkipDownstreamTasks(tasks=["other", ("mapped", 0)]))
    client.task_instances.succeed(
        ti_id,
        datetime.now(timezone.utc),
        [AssetProfile(name="nothing-active", uri="s3://nothing", type="Asset")],
        [],
        None,
    )
    out["succeeded"] = True

    # A retry.
    client, ti_id = started(base_url, retry_id, retry_token)
    client.task_instances.retry(
        ti_id, datetime.now(timezone.utc), "retried", retry_delay_seconds=12.5, retry_reason="flaky"
    )
    out["retried"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
