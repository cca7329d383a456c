"""Prints Airflow 3.3.2's Execution API routes as JSON, from Airflow's own app.

{"head": [{"method", "path", "scopes"}...] in Airflow's declaration order (its router matches
in that order), "versions": {"YYYY-MM-DD": [[method, path], ...]} from the per-version OpenAPI
documents Airflow's Cadwyn app serves, "bodies" and "queries": {"METHOD path": {field: required}}
of the head version's request bodies and query parameters}. Paths are under /execution, with `{key:path}` written
`{key}`. Run with the Python of a virtualenv holding apache-airflow-core==3.3.2.
"""

import json
import os
import re
import sys
import tempfile
import warnings

warnings.simplefilter("ignore")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from airflow.api_fastapi.execution_api.app import create_task_execution_api_app  # noqa: E402

app = create_task_execution_api_app()


def plain(path):
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def scopes_of(dependant, found):
    for scope in getattr(dependant, "oauth_scopes", None) or []:
        found.add(scope)
    for dep in dependant.dependencies:
        scopes_of(dep, found)
    return found


head = []
for route in app._latest_version_router.routes:
    if not isinstance(route, APIRoute) or route.path.startswith("/health"):
        continue
    for method in sorted(route.methods):
        head.append(
            {"method": method, "path": plain(route.path), "scopes": sorted(scopes_of(route.dependant, set()))}
        )

client = TestClient(app)
versions = {}
for version in sys.argv[1:]:
    doc = client.get(f"/openapi.json?version={version}").json()
    versions[version] = sorted(
        [method.upper(), plain(path)]
        for path, ops in doc["paths"].items()
        for method in ops
        if not path.startswith("/health")
    )
# The field names each head-version request body accepts and requires, by operation.
doc = client.get(f"/openapi.json?version={max(sys.argv[1:])}").json()
schemas = doc.get("components", {}).get("schemas", {})


def fields(schema):
    """{name: required} over a body schema, through $ref, anyOf/oneOf (the union of members)."""
    if "$ref" in schema:
        return fields(schemas[schema["$ref"].rsplit("/", 1)[1]])
    found = {}
    for member in schema.get("anyOf", []) + schema.get("oneOf", []):
        for name, required in fields(member).items():
            found[name] = found.get(name, True) and required
    required = set(schema.get("required", []))
    for name in schema.get("properties", {}):
        found[name] = name in required
    return found


bodies = {}
for path, ops in doc["paths"].items():
    for method, op in ops.items():
        schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if schema is not None:
            bodies[f"{method.upper()} {plain(path)}"] = fields(schema)
# The query parameters of each head-version operation: {name: required}.
queries = {}
for path, ops in doc["paths"].items():
    for method, op in ops.items():
        params = {p["name"]: bool(p.get("required")) for p in op.get("parameters", []) if p.get("in") == "query"}
        if params:
            queries[f"{method.upper()} {plain(path)}"] = params
print(json.dumps({"head": head, "versions": versions, "bodies": bodies, "queries": queries}))
