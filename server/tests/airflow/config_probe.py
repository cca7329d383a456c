"""Print what Airflow's own configuration returns for the options the Execution API server reads.

Run with the Python of an Airflow 3.3.2 virtualenv, in the environment to probe (AIRFLOW_HOME,
AIRFLOW_CONFIG, AIRFLOW__* variables):

    AIRFLOW_HOME=/tmp/home <venv>/bin/python server/tests/airflow/config_probe.py

Prints one JSON object: {"section.key": value-or-null, ...} with the values of
`conf.get(section, key, fallback=None)`, and {"error": "..."} (exit status 0) when Airflow
itself refuses the configuration. `server/tests/config_airflow.rs` compares this with
`server config --json --show-secrets`.

Importing airflow.configuration does not write an airflow.cfg (the CLI does), so a missing
file stays missing.
"""

import json
import os
import sys

# Configuration only: no `settings.initialize()`, which would create database engines (and
# need the drivers) for whatever sql_alchemy_conn says.
os.environ["_AIRFLOW__AS_LIBRARY"] = "1"

OPTIONS = [
    ("database", "sql_alchemy_conn"),
    ("core", "fernet_key"),
    ("core", "multi_team"),
    ("core", "max_map_length"),
    ("core", "num_dag_runs_to_retain_rendered_fields"),
    ("api_auth", "jwt_secret"),
    ("api_auth", "jwt_algorithm"),
    ("api_auth", "jwt_private_key_path"),
    ("api_auth", "trusted_jwks_url"),
    ("api_auth", "jwt_issuer"),
    ("api_auth", "jwt_leeway"),
    ("api_auth", "jwt_kid"),
    ("execution_api", "jwt_audience"),
    ("execution_api", "jwt_expiration_time"),
    ("scheduler", "task_queued_timeout"),
    ("state_store", "clear_on_success"),
    ("api", "expose_stacktrace"),
    ("secrets", "backend"),
]


def main() -> int:
    import warnings

    warnings.simplefilter("ignore")
    try:
        from airflow.configuration import conf

        values = {f"{s}.{k}": conf.get(s, k, fallback=None) for s, k in OPTIONS}
        # How Airflow types the ones it does not use as strings.
        values["typed.multi_team"] = conf.getboolean("core", "multi_team")
        values["typed.clear_on_success"] = conf.getboolean("state_store", "clear_on_success")
        values["typed.max_map_length"] = conf.getint("core", "max_map_length")
        values["typed.task_queued_timeout"] = conf.getfloat("scheduler", "task_queued_timeout")
        values["typed.expose_stacktrace"] = conf.get("api", "expose_stacktrace") == "True"
    except Exception as e:  # Airflow refused: report it, the caller compares.
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 0
    print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
