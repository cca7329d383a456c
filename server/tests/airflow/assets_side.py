"""Airflow's side of server/tests/routes_assets.rs.

Runs Airflow 3.3.2's own models, and its own Execution API in process
(`InProcessExecutionAPI`, auth bypassed), on the database the server under
test uses; the environment (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN,
AIRFLOW__CORE__FERNET_KEY, ...) is the server's. Prints one JSON document on
its last line.

    assets_side.py asset-fixtures TAG DAG_ID RUN_ID
        Creates assets, an alias and asset events with Airflow's models (one
        event created the run DAG_ID/RUN_ID), then asks Airflow's own API the
        requests the test replays on our server: {"requests": [[path, status, body]]}.
    assets_side.py state-read TI_ID KEY ASSET_NAME ASSET_KEY VALUE_JSON
        Reads what we stored with Airflow's state backend, and has Airflow's API
        store VALUE_JSON under KEY + "-airflow" for both stores, for comparison.
    assets_side.py hitl-read TI_ID
        The HITLDetail row as Airflow's model reads it.
    assets_side.py conn-test-create CONN_ID PASSWORD EXTRA COMMIT(0|1)
        A connection test request made by Airflow's model: {"id": ...}.
    assets_side.py sdk BASE_URL TI_TOKEN TI_ID CT_TOKEN CT_ID ASSET_NAME ASSET_URI ALIAS
        Drives our server with the real Task SDK client (airflow.sdk.api.client)
        through every route of these groups; prints what its models parsed.
    assets_side.py replay TI_ID REQUESTS_JSON [workload]
        Sends [[method, path, body or null], ...] ("{ti}" in either is TI_ID) to
        Airflow's own API, in order: {"responses": [[status, body or null], ...]}.
"""

import json
import sys
import warnings
from datetime import datetime, timezone
from urllib.parse import urlencode
from uuid import UUID

from sqlalchemy import select, text

from airflow.utils.session import create_session

warnings.filterwarnings("ignore")


def client(workload=False):
    from fastapi import Request
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.api_fastapi.execution_api.datamodels.token import TIClaims, TIToken
    from airflow.api_fastapi.execution_api.security import _jwt_bearer

    app = InProcessExecutionAPI().app
    if workload:
        # The connection-test routes take workload tokens only, whose subject is the test.
        async def workload_token(request: Request):
            return TIToken(
                id=UUID(request.path_params["connection_test_id"]),
                claims=TIClaims(scope="workload"),
            )

        app.dependency_overrides[_jwt_bearer] = workload_token
    # Airflow's 500s are answers to compare too.
    return TestClient(app, raise_server_exceptions=False)


def asset_fixtures(tag, dag_id, run_id):
    from airflow.models.asset import AssetActive, AssetAliasModel, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun

    def at(hour):
        return datetime(2024, 3, 1, hour, 0, 0, 250000, tzinfo=timezone.utc)

    with create_session() as s:
        active = AssetModel(
            name=f"af-a-{tag}", uri=f"s3://af/{tag}/a", group="asset", extra={"k": [1, "é"]}
        )
        inactive = AssetModel(name=f"af-b-{tag}", uri=f"s3://af/{tag}/b", group="g", extra={})
        s.add_all([active, inactive])
        s.flush()
        s.add(AssetActive.for_asset(active))
        alias = AssetAliasModel(name=f"af-alias-{tag}", group="asset")
        alias.assets.extend([active, inactive])
        s.add(alias)
        s.flush()
        run = s.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        run.start_date = at(9)
        run.state = "running"
        e1 = AssetEvent(asset_id=active.id, extra={}, timestamp=at(1))
        e2 = AssetEvent(
            asset_id=active.id,
            extra={"from": "airflow", "n": 1.5},
            timestamp=at(2),
            source_dag_id="producer",
            source_task_id="t",
            source_run_id="r",
            source_map_index=3,
            partition_key="p1",
        )
        e3 = AssetEvent(asset_id=inactive.id, extra={}, timestamp=at(3))
        e4 = AssetEvent(asset_id=active.id, extra={"via": "alias"}, timestamp=at(4))
        s.add_all([e1, e2, e3, e4])
        s.flush()
        e2.created_dagruns.append(run)
        e4.source_aliases.append(alias)

    a, b, al = f"af-a-{tag}", f"af-b-{tag}", f"af-alias-{tag}"
    a_uri, b_uri = f"s3://af/{tag}/a", f"s3://af/{tag}/b"
    queries = [
        ("/assets/by-name", {"name": a}),
        ("/assets/by-name", {"name": b}),
        ("/assets/by-uri", {"uri": a_uri}),
        ("/assets/by-uri", {"uri": b_uri}),
        ("/assets/by-alias", {"alias_name": al}),
        ("/assets/by-alias", {"alias_name": f"nope-{tag}"}),
        ("/asset-events/by-asset", {"name": a, "uri": ""}),
        ("/asset-events/by-asset", {"name": "", "uri": a_uri, "ascending": "false", "limit": 2}),
        ("/asset-events/by-asset", {"name": b, "uri": ""}),
        ("/asset-events/by-asset", {"name": b, "uri": b_uri}),
        ("/asset-events/by-asset", {"name": "", "uri": ""}),
        (
            "/asset-events/by-asset",
            {
                "name": a,
                "uri": a_uri,
                "after": "2024-03-01T02:00:00.250000+00:00",
                "before": "2024-03-01T05:00:00+02:00",
            },
        ),
        ("/asset-events/by-asset-alias", {"name": al}),
        ("/asset-events/by-asset-alias", {"name": al, "limit": 0, "ascending": "0"}),
    ]
    requests = []
    with client() as c:
        for path, params in queries:
            url = f"{path}?{urlencode(params)}"
            r = c.get(url)
            requests.append([url, r.status_code, r.json()])
    print(json.dumps({"requests": requests}))


def state_read(ti_id, key, asset_name, asset_key, value_json):
    from airflow._shared.state import AssetScope, TaskScope
    from airflow.models.asset import AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.state import get_state_backend

    backend = get_state_backend()
    with create_session() as s:
        ti = s.get(TaskInstance, UUID(ti_id))
        scope = TaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        asset_id = s.scalar(select(AssetModel.id).where(AssetModel.name == asset_name))
        task_raw = backend.get(scope, key, session=s)
        asset_raw = backend.get(AssetScope(asset_id=asset_id), asset_key, session=s)
    with client() as c:
        value = json.loads(value_json)
        r1 = c.put(f"/store/ti/{ti_id}/{key}-airflow", json={"value": value})
        r2 = c.put(
            "/store/asset/by-name/value?" + urlencode({"name": asset_name, "key": asset_key + "-airflow"}),
            json={"value": value},
        )
        assert (r1.status_code, r2.status_code) == (204, 204), (r1.text, r2.text)
    with create_session() as s:
        airflow_task_raw = backend.get(scope, key + "-airflow", session=s)
        airflow_asset_raw = backend.get(AssetScope(asset_id=asset_id), asset_key + "-airflow", session=s)
        writers = s.execute(
            text(
                "SELECT key, last_updated_by_kind, last_updated_by_dag_id, last_updated_by_run_id, "
                "last_updated_by_task_id, last_updated_by_map_index FROM asset_state_store "
                "WHERE asset_id = :a ORDER BY key"
            ),
            {"a": asset_id},
        ).all()
    print(
        json.dumps(
            {
                "task": json.loads(task_raw),
                "task_raw": task_raw,
                "asset": json.loads(asset_raw),
                "asset_raw": asset_raw,
                "airflow_task_raw": airflow_task_raw,
                "airflow_asset_raw": airflow_asset_raw,
                "writers": [list(w) for w in writers],
            }
        )
    )


def hitl_read(ti_id):
    from airflow.models.hitl import HITLDetail

    with create_session() as s:
        d = s.get(HITLDetail, UUID(ti_id))
        print(
            json.dumps(
                {
                    "options": d.options,
                    "subject": d.subject,
                    "body": d.body,
                    "defaults": d.defaults,
                    "multiple": d.multiple,
                    "params": d.params,
                    "assigned_users": d.assigned_users,
                    "response_received": d.response_received,
                    "chosen_options": d.chosen_options,
                    "params_input": d.params_input,
                    "responded_by_user": d.responded_by_user,
                    "created_at": d.created_at.isoformat(),
                    "responded_at": d.responded_at.isoformat() if d.responded_at else None,
                }
            )
        )


def conn_test_create(conn_id, password, extra, commit):
    from airflow.models.connection_test import ConnectionTestRequest

    with create_session() as s:
        ct = ConnectionTestRequest(
            connection_id=conn_id,
            conn_type="postgres",
            host="db.example.com",
            login="tester",
            password=password,
            schema="analytics",
            port=5432,
            extra=extra,
            commit_on_success=commit == "1",
        )
        s.add(ct)
        s.flush()
        print(json.dumps({"id": str(ct.id)}))


def replay(ti_id, requests_json, token="execution"):
    responses = []
    with client(workload=token == "workload") as c:
        for method, path, body in json.loads(requests_json):
            r = c.request(
                method,
                path.replace("{ti}", ti_id),
                content=None if body is None else body.replace("{ti}", ti_id),
                headers={"content-type": "application/json"} if body is not None else {},
            )
            try:
                payload = r.json() if r.content else None
            except ValueError:
                payload = r.text
            responses.append([r.status_code, payload])
    print(json.dumps({"responses": responses}))


def sdk(base_url, ti_token, ti_id, ct_token, ct_id, asset_name, asset_uri, alias):
    from airflow.sdk.api.client import Client
    from airflow.sdk.api.datamodels._generated import ConnectionTestState

    ti = UUID(ti_id)
    out = {}
    client = Client(base_url=base_url, token=ti_token)
    out["asset"] = client.assets.get(name=asset_name).model_dump(mode="json")
    out["asset_by_uri"] = client.assets.get(uri=asset_uri).model_dump(mode="json")
    out["missing_asset"] = client.assets.get(name="no-such-asset").model_dump(mode="json")
    out["by_alias"] = len(client.assets.get_by_alias(alias).assets)
    events = client.asset_events.get(name=asset_name, ascending=False, limit=5)
    out["events"] = events.model_dump(mode="json")
    out["alias_events"] = client.asset_events.get(alias_name=alias).model_dump(mode="json")
    store = client.task_state_store
    store.set(ti, "a/b c", {"n": [1, 2.5, "é"]}, expires_at=datetime(2031, 1, 1, tzinfo=timezone.utc))
    out["task_value"] = store.get(ti, "a/b c").model_dump(mode="json")
    store.delete(ti, "a/b c")
    out["task_missing"] = store.get(ti, "a/b c").model_dump(mode="json")
    store.set(ti, "x", 1, expires_at=None)
    store.clear(ti)
    out["task_cleared"] = store.get(ti, "x").model_dump(mode="json")
    assets = client.asset_state_store
    assets.set("wm", {"at": "2024"}, name=asset_name)
    out["asset_value"] = assets.get("wm", uri=asset_uri).model_dump(mode="json")
    assets.delete("wm", uri=asset_uri)
    out["asset_missing"] = assets.get("wm", name=asset_name).model_dump(mode="json")
    assets.set("wm2", 2, uri=asset_uri)
    assets.clear(name=asset_name)
    out["asset_cleared"] = assets.get("wm2", name=asset_name).model_dump(mode="json")
    hitl = client.hitl
    out["hitl_request"] = hitl.add_response(
        ti_id=ti,
        options=["Yes", "No"],
        subject="Approve?",
        params={"p": {"value": 1, "description": None, "schema": {}}},
        assigned_users=[{"id": "u1", "name": "Ann"}],
    ).model_dump(mode="json")
    out["hitl_pending"] = hitl.get_detail_response(ti).model_dump(mode="json")
    out["hitl_answer"] = hitl.update_response(
        ti_id=ti, chosen_options=["No"], params_input={"p": 2}
    ).model_dump(mode="json")
    ct_client = Client(base_url=base_url, token=ct_token)
    tests = ct_client.connection_tests
    out["ct_connection"] = tests.get_connection(UUID(ct_id)).model_dump(mode="json", by_alias=True)
    tests.update_state(UUID(ct_id), ConnectionTestState.SUCCESS, "ok " * 1000)
    print(json.dumps(out))


def main(argv):
    command, args = argv[1], argv[2:]
    {
        "asset-fixtures": asset_fixtures,
        "state-read": state_read,
        "hitl-read": hitl_read,
        "conn-test-create": conn_test_create,
        "replay": replay,
        "sdk": sdk,
    }[command](*args)


if __name__ == "__main__":
    main(sys.argv)
