"""Airflow's side of server/tests/routes_queries.rs.

Runs Airflow 3.3.2's own code on the database the server under test uses (the environment,
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and the rest, is the server's). Prints JSON lines.

    queries_side.py api [--version YYYY-MM-DD] PATH...
                                     -> per path, {"status": N, "body": JSON} as Airflow's own
                                        Execution API answers `GET PATH` (in process, so without
                                        JWT checks: the routes' logic alone), at the head API
                                        version or with that `Airflow-API-Version` header
    queries_side.py calls JSON       -> per request of the JSON list ({"version", "method",
                                        "path", "body", "before", "token"}), {"status": N, "body": JSON}
                                        as Airflow's own Execution API app answers it (the
                                        api-server's app, in process; the `token` checked), with
                                        `Airflow-API-Version: version` (`head`: no header), after
                                        running the SQL statements `before`
    queries_side.py sql STATEMENT... -> per statement, its first row (or [] when none), through
                                        Airflow's engine, in one transaction
    queries_side.py variables KEY VALUE [KEY VALUE...]
                                     -> sets each variable with Airflow's `Variable.set`
"""

import json
import logging
import sys
import warnings


def api(paths):
    import httpx

    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

    headers = {}
    if paths[:1] == ["--version"]:
        headers["Airflow-API-Version"] = paths[1]
        paths = paths[2:]
    in_process = InProcessExecutionAPI()
    with httpx.Client(transport=in_process.transport, base_url="http://in-process.invalid/") as client:
        for path in paths:
            response = client.get(path, headers=headers)
            body = response.json() if response.content else None
            print(json.dumps({"status": response.status_code, "body": body}))


def calls(requests):
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from airflow.api_fastapi.common.dagbag import create_dag_bag
    from airflow.api_fastapi.execution_api.app import create_task_execution_api_app
    from airflow.utils.session import create_session

    # The app `airflow api-server --apps execution` serves (`api_fastapi/app.py` gives it its
    # DAG bag), tokens checked with the configured secret: the in-process app skips the check
    # only at the head version.
    app = create_task_execution_api_app()
    app.state.dag_bag = create_dag_bag()
    with TestClient(app) as client:
        for request in json.loads(requests):
            with create_session() as session:
                for statement in request.get("before", []):
                    session.execute(text(statement))
            headers = {"Content-Type": "application/json"}
            if request.get("token"):
                headers["Authorization"] = f"Bearer {request['token']}"
            if request["version"] != "head":
                headers["Airflow-API-Version"] = request["version"]
            response = client.request(
                request["method"], request["path"], headers=headers, content=request.get("body")
            )
            body = response.json() if response.content else None
            print(json.dumps({"status": response.status_code, "body": body}))


def sql(statements):
    from sqlalchemy import text

    from airflow.utils.session import create_session

    with create_session() as session:
        for statement in statements:
            result = session.execute(text(statement))
            row = result.first() if result.returns_rows else None
            values = [] if row is None else list(row)
            print(json.dumps([v if v is None or isinstance(v, (int, float, str, bool)) else str(v) for v in values]))


def variables(pairs):
    from airflow.models.variable import Variable

    for key, value in zip(pairs[::2], pairs[1::2]):
        Variable.set(key, value)
    print(json.dumps({"ok": True}))


def main(argv):
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    command, args = argv[1], argv[2:]
    if command == "api":
        api(args)
    elif command == "calls":
        calls(args[0])
    elif command == "sql":
        sql(args)
    elif command == "variables":
        variables(args)

    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
