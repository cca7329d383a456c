"""Drive one task instance through its whole life with the Airflow Task SDK's own client.

Run by server/tests/interop_sdk.rs against our server. Every step asserts what the
SDK returned; any failure exits non-zero with a traceback on stderr. On success the
last line on stdout is a JSON summary starting with `INTEROP-OK`.

Usage:
  drive_task.py --base-url http://127.0.0.1:PORT/execution/ --ti-id UUID \
      --token WORKLOAD_TOKEN --dag-id D --task-id T --conn-id C --outcome success|failed
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import uuid
from datetime import datetime, timezone

from airflow.sdk.api.client import Client, ServerResponseError
from airflow.sdk.api.datamodels._generated import (
    ConnectionResponse,
    TerminalStateNonSuccess,
    TIRunContext,
    VariableResponse,
    XComResponse,
)
from airflow.sdk.exceptions import ErrorType, TaskAlreadyRunningError
from airflow.sdk.execution_time.comms import ErrorResponse


def claims(token: str) -> dict:
    """The JWT payload, unverified (we only look at what the server handed us)."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def now() -> datetime:
    return datetime.now(timezone.utc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--ti-id", required=True, type=uuid.UUID)
    parser.add_argument("--token", required=True)
    parser.add_argument("--dag-id", required=True)
    parser.add_argument("--task-id", required=True)
    parser.add_argument("--conn-id", required=True)
    parser.add_argument("--outcome", required=True, choices=["success", "failed"])
    args = parser.parse_args()
    ti_id: uuid.UUID = args.ti_id
    steps: list[str] = []

    workload = claims(args.token)
    check(workload.get("scope") == "workload", f"test setup: expected a workload token, got {workload}")
    check(workload.get("sub") == str(ti_id), f"test setup: token sub {workload.get('sub')} != {ti_id}")

    client = Client(base_url=args.base_url, token=args.token)

    # 1. Start: PATCH /run with the workload token; the SDK parses TIRunContext and switches
    #    to the execution token from Refreshed-API-Token.
    context = client.task_instances.start(ti_id, os.getpid(), now())
    check(isinstance(context, TIRunContext), f"start returned {type(context)}")
    check(context.dag_run.dag_id == args.dag_id, f"dag_run.dag_id {context.dag_run.dag_id!r} != {args.dag_id!r}")
    run_id = context.dag_run.run_id
    check(bool(run_id), "dag_run.run_id is empty")
    steps.append("start")

    execution_token = client.auth.token
    check(execution_token != args.token, "client still uses the workload token: no Refreshed-API-Token on /run")
    execution = claims(execution_token)
    check(execution.get("scope", "execution") == "execution", f"exchanged token is not an execution token: {execution}")
    check(execution.get("sub") == str(ti_id), f"exchanged token sub {execution.get('sub')} != {ti_id}")
    check(execution["exp"] - execution["iat"] < workload["exp"] - workload["iat"], "execution token should be shorter-lived")
    steps.append("token-exchanged")

    # 2. Another process starting it while it runs: the SDK recognises Airflow's 409 shape
    #    (`reason: invalid_state, previous_state: running`). The same pid would be a retried
    #    request, which the server answers idempotently.
    try:
        client.task_instances.start(ti_id, os.getpid() + 1, now())
    except TaskAlreadyRunningError:
        steps.append("already-running-409")
    else:
        raise AssertionError("start from another pid succeeded; expected 409 previous_state=running")
    retried = client.task_instances.start(ti_id, os.getpid(), now())
    check(retried.dag_run.run_id == run_id, f"retried start returned {retried!r}")

    # 3. Heartbeat with the execution token (same pid and hostname as start).
    client.task_instances.heartbeat(ti_id, os.getpid())
    steps.append("heartbeat")

    # 4. Variables.
    key = f"interop_{args.outcome}_{ti_id.hex[:8]}"
    client.variables.set(key, "some value", description="set by the Task SDK")
    variable = client.variables.get(key)
    check(isinstance(variable, VariableResponse), f"variables.get returned {variable!r}")
    check((variable.key, variable.value) == (key, "some value"), f"variables.get returned {variable!r}")
    missing = client.variables.get(f"{key}_missing")
    check(
        isinstance(missing, ErrorResponse) and missing.error == ErrorType.VARIABLE_NOT_FOUND,
        f"missing variable gave {missing!r}",
    )
    steps.append("variables")

    # 5. A connection created with `server connection add`.
    connection = client.connections.get(args.conn_id)
    check(isinstance(connection, ConnectionResponse), f"connections.get returned {connection!r}")
    check(connection.conn_id == args.conn_id, f"conn_id {connection.conn_id!r}")
    check(connection.conn_type == "postgres", f"conn_type {connection.conn_type!r}")
    check(connection.host == "db.example.com", f"host {connection.host!r}")
    check(connection.port == 5432, f"port {connection.port!r}")
    check(connection.login == "airflow", f"login {connection.login!r}")
    check(connection.password == "s3cret", f"password {connection.password!r}")
    check(connection.schema_ == "analytics", f"schema {connection.schema_!r}")
    check(json.loads(connection.extra or "null") == {"sslmode": "require"}, f"extra {connection.extra!r}")
    missing_conn = client.connections.get(f"{args.conn_id}_missing")
    check(
        isinstance(missing_conn, ErrorResponse) and missing_conn.error == ErrorType.CONNECTION_NOT_FOUND,
        f"missing connection gave {missing_conn!r}",
    )
    steps.append("connections")

    # 6. XComs.
    value = {"answer": 42, "items": [1, "two", None], "outcome": args.outcome}
    client.xcoms.set(args.dag_id, run_id, args.task_id, "return_value", value)
    xcom = client.xcoms.get(args.dag_id, run_id, args.task_id, "return_value")
    check(isinstance(xcom, XComResponse), f"xcoms.get returned {xcom!r}")
    check(xcom.key == "return_value" and xcom.value == value, f"xcoms.get returned {xcom!r}")
    steps.append("xcoms")

    # 7. Finish.
    if args.outcome == "success":
        client.task_instances.succeed(ti_id, now(), task_outlets=[], outlet_events=[], rendered_map_index=None)
    else:
        client.task_instances.finish(ti_id, TerminalStateNonSuccess.FAILED, now(), rendered_map_index=None)
    steps.append(args.outcome)

    # 8. The task instance is terminal now: heartbeat and start are refused with 409.
    for name, call in [
        ("heartbeat", lambda: client.task_instances.heartbeat(ti_id, os.getpid())),
        ("start", lambda: client.task_instances.start(ti_id, os.getpid(), now())),
    ]:
        try:
            call()
        except ServerResponseError as e:
            check(e.response.status_code == 409, f"{name} after {args.outcome}: status {e.response.status_code}")
        else:
            raise AssertionError(f"{name} after {args.outcome} succeeded; expected 409")
    steps.append("terminal-409")

    print("INTEROP-OK " + json.dumps({"ti_id": str(ti_id), "run_id": run_id, "steps": steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
