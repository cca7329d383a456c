"""End-to-end: a real Airflow 3.3.2 deployment runs the DAGs of tests/e2e/dags with every
worker call served by our Execution API server, on one metadata database.

    python tests/e2e/run.py --server target/release/server --work DIR \
        [--postgres-url postgres://user@host:port/db] [--fault]

Starts, with one `AIRFLOW__*` environment for all of them: `airflow db migrate` on a fresh
database (Fernet on), our server (`server serve`) on that database, `airflow dag-processor`,
`airflow scheduler` (LocalExecutor) and `airflow triggerer`. No Airflow api-server runs: the
workers' `[core] execution_api_server_url` names ours, and the dag-processor and triggerer
use Airflow's in-process API as in production. The DAGs are triggered through Airflow's own
`trigger_dag`; the asset-scheduled DAG is created by the scheduler. Then every DAG run's
state, each task instance's state and try number, and the XComs, variables, task
reschedules, asset events and history rows the DAGs produced are checked against expected
values, read with Airflow's own models.

`--fault` also kills our server with SIGKILL several times while the DAGs run, restarting it
each time; the same checks must pass (the Task SDK retries its calls).

Our server runs with its defaults, strict ownership among them (`ti:running`, `task:self`):
the run fails if any worker call was refused with 401 or 403.

Every wait is bounded; every process started is stopped (its whole process group) on exit.
Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAGS = HERE / "dags"

MANUAL_DAGS = [
    "e2e_xcoms",
    "e2e_variables",
    "e2e_retry",
    "e2e_branching",
    "e2e_mapping",
    "e2e_waiting",
    "e2e_producer",
]
ALL_DAGS = MANUAL_DAGS + ["e2e_consumer"]

# The fault run's SIGKILLs of our server: at least this many while DAGs run, at most that many.
MIN_KILLS = 3
# How long our server stays down after a kill, in seconds: at first, and at most. While no
# worker call has been cut off yet, each outage is twice the one before.
DOWN_SECS = 1.5
MAX_DOWN_SECS = 6.0
MAX_KILLS = 8


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Every process started, each in its own session, stopped as a group."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        with self.lock:
            self.procs[name] = proc
        log(f"started {name} (pid {proc.pid})")
        return proc

    def kill9(self, name: str) -> None:
        with self.lock:
            proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        with self.lock:
            procs = list(self.procs.items())
            self.procs.clear()
        for name, proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for name, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM; SIGKILL")
        for name, proc in procs:
            # The group may hold workers the leader left behind.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def alive(self, name: str) -> bool:
        with self.lock:
            proc = self.procs.get(name)
        return proc is not None and proc.poll() is None


def wait_until(what: str, predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Deployment:
    def __init__(self, args, dags: Path = DAGS):
        self.args = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.home = self.work / "airflow-home"
        self.home.mkdir(exist_ok=True)
        self.logs = self.work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.procs = Processes(self.logs)
        self.port = free_port()
        self.venv_bin = Path(sys.executable).parent
        self.failures: list[str] = []
        self.kills = 0

        if args.postgres_url:
            server, _, db = args.postgres_url.rpartition("/")
            self.database = f"{server}/{db}"
            conn = self.database.replace("postgres://", "postgresql+psycopg2://", 1)
            conn = conn.replace("postgresql://", "postgresql+psycopg2://", 1)
            self.sql_alchemy_conn = conn
            self.backend = "postgres"
        else:
            self.sql_alchemy_conn = f"sqlite:///{self.work / 'airflow.db'}"
            self.backend = "sqlite"

        from cryptography.fernet import Fernet

        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "EXECUTION_API_"))
        }
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "6",
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "airflow"),
                # Workers retry a call for long enough to ride out a server restart.
                "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "8",
                "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "5",
                "EXECUTION_API_BIND": f"127.0.0.1:{self.port}",
                "RUST_LOG": "info",
            }
        )
        if self.backend == "postgres":
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE"] = "3"
        env_file = self.work / "env.json"
        if args.verify_only:
            # The deployment of an earlier run (its keys and ports), to check it again.
            self.env = json.loads(env_file.read_text())
        else:
            env_file.write_text(json.dumps(self.env))
            env_file.chmod(0o600)
        # This process reads the database with Airflow's models under the same configuration.
        os.environ.update(self.env)

    # --- setup --------------------------------------------------------------------------

    def airflow(self, *argv: str, timeout: float = 600) -> None:
        log("airflow " + " ".join(argv))
        result = subprocess.run(
            [str(self.venv_bin / "airflow"), *argv],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
        if result.returncode != 0:
            sys.stdout.write(result.stdout.decode(errors="replace")[-5000:])
            raise RuntimeError(f"airflow {' '.join(argv)} exited {result.returncode}")

    def migrate_and_seed(self) -> None:
        if self.backend == "postgres":
            import psycopg2

            server, _, db = self.args.postgres_url.rpartition("/")
            admin = psycopg2.connect(server.replace("postgres://", "postgresql://", 1) + "/postgres")
            admin.autocommit = True
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{db}"')
                cur.execute(f'CREATE DATABASE "{db}"')
            admin.close()
        self.airflow("db", "migrate")
        self.seed()

    def seed(self) -> None:
        # Variables and connections written by Airflow's own code, encrypted with the key.
        from airflow.models import Connection, Variable
        from airflow.utils.session import create_session

        Variable.set("e2e_plain", "plain value")
        Variable.set("e2e_json", json.dumps({"field": "nested", "n": [1, 2]}))
        with create_session() as session:
            session.add(
                Connection(
                    conn_id="e2e_db",
                    conn_type="postgres",
                    host="db.example.com",
                    login="reader",
                    password="s3cr3t/with:odd@chars",
                    port=5433,
                    schema="analytics",
                    extra=json.dumps({"sslmode": "require", "n": 7}),
                )
            )

    def start_server(self) -> None:
        self.procs.start("server", [self.args.server, "serve"], self.env)
        wait_until(
            "our server to answer /execution/health",
            lambda: http_ok(f"http://127.0.0.1:{self.port}/execution/health"),
            60,
            0.1,
        )

    def start_airflow(self) -> None:
        airflow = str(self.venv_bin / "airflow")
        self.procs.start("dag-processor", [airflow, "dag-processor"], self.env)
        self.procs.start("scheduler", [airflow, "scheduler"], self.env)
        self.procs.start("triggerer", [airflow, "triggerer"], self.env)

    # --- driving --------------------------------------------------------------------------

    def wait_parsed(self) -> None:
        from sqlalchemy import select

        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.utils.session import create_session

        from airflow.models.errors import ParseImportError

        def parsed():
            with create_session() as session:
                found = set(session.scalars(select(SerializedDagModel.dag_id)).all())
                errors = session.execute(select(ParseImportError.filename, ParseImportError.stacktrace)).all()
            if errors:
                raise RuntimeError(f"DAG files failed to import: {errors}")
            return set(ALL_DAGS) <= found

        wait_until("the dag-processor to parse every DAG", parsed, 240, 1)
        log("every DAG parsed")

    def trigger(self) -> None:
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.utils.types import DagRunTriggeredByType

        for dag_id in MANUAL_DAGS:
            trigger_dag(dag_id, run_id=f"e2e__{dag_id}", triggered_by=DagRunTriggeredByType.CLI)
        log(f"triggered {len(MANUAL_DAGS)} DAG runs")

    def runs(self) -> dict[str, list]:
        from sqlalchemy import select

        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.execute(
                select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.run_type).where(
                    DagRun.dag_id.in_(ALL_DAGS)
                )
            ).all()
        out: dict[str, list] = {}
        for dag_id, run_id, state, run_type in rows:
            out.setdefault(dag_id, []).append((run_id, str(state), str(run_type)))
        return out

    def wait_finished(self, timeout: float) -> None:
        last = [None]

        def finished():
            runs = self.runs()
            summary = {d: [s for _, s, _ in runs.get(d, [])] for d in ALL_DAGS}
            if summary != last[0]:
                log(f"runs: {summary}")
                last[0] = summary
            for name in ("server", "scheduler", "dag-processor", "triggerer"):
                if not self.procs.alive(name) and not (name == "server" and self.args.fault):
                    raise RuntimeError(f"{name} exited early; see {self.logs / (name + '.log')}")
            done = lambda d: runs.get(d) and all(s in ("success", "failed") for _, s, _ in runs[d])  # noqa: E731
            if not all(done(d) for d in MANUAL_DAGS):
                return False
            # The consumer's run exists only once the producer's asset event queued it.
            producer_ok = runs["e2e_producer"][0][1] == "success"
            return done("e2e_consumer") or not producer_ok

        wait_until("every DAG run to finish", finished, timeout, 2)

    def fault_loop(self, stop: threading.Event) -> None:
        """SIGKILL our server every few seconds while DAGs run, restarting it after `DOWN_SECS`.

        The kills start early and keep coming until every DAG run has finished (at most
        `MAX_KILLS`), so a quick machine, on which the suite finishes in half a minute, still
        sees enough of them: the run fails with fewer than `MIN_KILLS`. The server stays down
        a moment, as under a supervisor's restart delay: killed and restarted at once, it
        answers quickly enough that no worker call may meet the outage (a run on a quick
        machine had none, and proved nothing); down, every call workers make meanwhile is
        refused and retried.
        """
        delays = [3, 5, 4, 6, 5, 7, 4, 6]
        down = DOWN_SECS
        for delay in delays[:MAX_KILLS]:
            if stop.wait(delay):
                return
            log(f"SIGKILL our server (kill {self.kills + 1}, down {down:g} s)")
            self.procs.kill9("server")
            self.kills += 1
            time.sleep(down)
            # No worker call met the outages so far (the workers were between calls, as on
            # a quick machine): the next one is longer, so that one does.
            if self.retried_calls() == 0:
                down = min(down * 2, MAX_DOWN_SECS)
            try:
                self.start_server()
            except Exception as exc:  # the main loop reports the dead server
                log(f"restart failed: {exc}")
                return

    def retried_calls(self) -> int:
        """The workers' retries of calls our server did not answer (tenacity's retry log line,
        written by the task supervisors into the scheduler's log)."""
        path = self.logs / "scheduler.log"
        if not path.exists():
            return 0
        return path.read_text(errors="replace").count(
            "Starting call to 'airflow.sdk.api.client.Client.request'"
        )

    # --- checks ---------------------------------------------------------------------------

    def check(self, what: str, got, want) -> None:
        if got != want:
            self.failures.append(f"{what}: got {got!r}, want {want!r}")
        else:
            log(f"ok  {what}")

    def verify(self) -> None:
        from sqlalchemy import func, select

        from airflow.models import TaskInstance, Variable
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from airflow.models.taskreschedule import TaskReschedule
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        runs = self.runs()
        for dag_id in MANUAL_DAGS:
            self.check(f"{dag_id} run", [(r, s) for r, s, _ in runs.get(dag_id, [])], [(f"e2e__{dag_id}", "success")])
        consumer = runs.get("e2e_consumer", [])
        self.check("e2e_consumer runs (asset-triggered)", [(s, t) for _, s, t in consumer], [("success", "asset_triggered")])

        with create_session() as session:

            def tis(dag_id):
                rows = session.execute(
                    select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number, TaskInstance.rendered_map_index).where(
                        TaskInstance.dag_id == dag_id
                    )
                ).all()
                return {(t, m): (str(s), n, r) for t, m, s, n, r in rows}

            def states(dag_id):
                return {k: (s, n) for k, (s, n, _) in tis(dag_id).items()}

            def xcom(dag_id, task_id, key="return_value", map_index=-1):
                row = session.scalars(
                    select(XComModel.value).where(
                        XComModel.dag_id == dag_id,
                        XComModel.task_id == task_id,
                        XComModel.key == key,
                        XComModel.map_index == map_index,
                    )
                ).first()
                # The value as stored (SQLAlchemy's JSON column decodes it once): what the
                # Execution API gives a worker. (XComModel.deserialize_value would decode a
                # JSON-looking string a second time, as Airflow's UI does.)
                return row

            ok = lambda tasks: {(t, -1): ("success", 1) for t in tasks}  # noqa: E731

            # XComs.
            self.check(
                "e2e_xcoms tasks",
                states("e2e_xcoms"),
                ok(["returns_dict", "several", "add", "push_keyed", "pull_templated", "big_value", "check_big", "huge_ints", "check_ints", "many_xcoms", "read_many"]),
            )
            self.check("xcom returns_dict", xcom("e2e_xcoms", "returns_dict"), {"a": 1, "b": [1, 2, 3], "c": None, "d": "ünïcode"})
            self.check("xcom multiple_outputs left/right", (xcom("e2e_xcoms", "several", "left"), xcom("e2e_xcoms", "several", "right")), (10, 32))
            self.check("xcom add", xcom("e2e_xcoms", "add"), 42)
            self.check("xcom push_keyed", (xcom("e2e_xcoms", "push_keyed"), xcom("e2e_xcoms", "push_keyed", "color")), ("operator-return", {"name": "blue", "rgb": [0, 0, 255]}))
            self.check("xcom pull_templated", xcom("e2e_xcoms", "pull_templated"), "operator-return+blue")
            items = ["item-%06d" % i for i in range(120_000)]
            self.check("xcom big_value (3 MB)", xcom("e2e_xcoms", "big_value") == items, True)
            self.check("xcom check_big", xcom("e2e_xcoms", "check_big"), hashlib.sha256("\n".join(items).encode()).hexdigest())
            self.check("xcom huge_ints", xcom("e2e_xcoms", "huge_ints"), {"u64max": 2**64 - 1, "over_i64": 2**63 + 1, "i64min": -(2**63), "small": 3})
            self.check("xcom check_ints", xcom("e2e_xcoms", "check_ints"), str(2**64 - 1))
            many = session.scalar(
                select(func.count()).select_from(XComModel).where(XComModel.dag_id == "e2e_xcoms", XComModel.task_id == "many_xcoms", XComModel.key.like("k%"))
            )
            self.check("xcom many_xcoms count", many, 200)
            self.check("xcom many_xcoms k137", xcom("e2e_xcoms", "many_xcoms", "k137"), 137 * 137)
            self.check("xcom read_many", xcom("e2e_xcoms", "read_many"), sum(i * i for i in range(200)))

            # Variables and connections.
            self.check("e2e_variables tasks", states("e2e_variables"), ok(["read_variables", "write_variable", "read_connection", "templated"]))
            self.check(
                "xcom read_variables",
                xcom("e2e_variables", "read_variables"),
                {"plain": "plain value", "json": {"field": "nested", "n": [1, 2]}, "missing": "fallback"},
            )
            self.check("xcom write_variable", xcom("e2e_variables", "write_variable"), ["written by a task", {"n": 2**64 - 1}])
            self.check(
                "xcom read_connection",
                xcom("e2e_variables", "read_connection"),
                {"conn_type": "postgres", "host": "db.example.com", "login": "reader", "password": "s3cr3t/with:odd@chars", "port": 5433, "schema": "analytics", "extra": {"sslmode": "require", "n": 7}},
            )
            self.check("xcom templated", xcom("e2e_variables", "templated"), ["plain value", "db.example.com", "nested"])
            self.check("variable written by a task, read by Airflow", Variable.get("e2e_written"), "written by a task")
            self.check("JSON variable written by a task", Variable.get("e2e_written_json", deserialize_json=True), {"n": 2**64 - 1})
            encrypted = session.execute(
                select(Variable.is_encrypted).where(Variable.key == "e2e_written")
            ).scalar()
            self.check("variable written by a task is encrypted at rest", encrypted, True)

            # Retry.
            self.check("e2e_retry tasks", states("e2e_retry"), {("flaky", -1): ("success", 2), ("after", -1): ("success", 1)})
            self.check("xcom flaky (second try)", xcom("e2e_retry", "flaky"), 2)
            self.check("xcom after retry", xcom("e2e_retry", "after"), 20)
            history = session.execute(
                select(TaskInstanceHistory.try_number, TaskInstanceHistory.state).where(
                    TaskInstanceHistory.dag_id == "e2e_retry", TaskInstanceHistory.task_id == "flaky"
                )
            ).all()
            self.check("flaky's first try archived (as failed, as Airflow's record_ti does)", [(n, str(s)) for n, s in history], [(1, "failed")])

            # Branching and short-circuit.
            self.check(
                "e2e_branching tasks",
                states("e2e_branching"),
                {
                    ("choose", -1): ("success", 1),
                    ("chosen", -1): ("success", 1),
                    ("not_chosen", -1): ("skipped", 0),
                    ("after_not_chosen", -1): ("skipped", 0),
                    ("join", -1): ("success", 1),
                    ("gate", -1): ("success", 1),
                    ("behind_gate", -1): ("skipped", 0),
                },
            )

            # Mapping.
            mapping = tis("e2e_mapping")
            self.check(
                "e2e_mapping tasks",
                {k: v[:2] for k, v in mapping.items()},
                {
                    ("numbers", -1): ("success", 1),
                    **{("square", i): ("success", 1) for i in range(5)},
                    ("total", -1): ("success", 1),
                    ("labels", -1): ("success", 1),
                    **{("shout", i): ("success", 1) for i in range(3)},
                },
            )
            self.check("rendered map indexes", [mapping[("square", i)][2] for i in range(5)], [f"square of {n}" for n in range(1, 6)])
            self.check("mapped xcoms", [xcom("e2e_mapping", "square", map_index=i) for i in range(5)], [1, 4, 9, 16, 25])
            self.check("reducer", xcom("e2e_mapping", "total"), 55)
            self.check("partial+expand", [xcom("e2e_mapping", "shout", map_index=i) for i in range(3)], ["A!", "B!", "C!"])

            # Waiting: reschedule, deferral, HITL.
            self.check(
                "e2e_waiting tasks",
                states("e2e_waiting"),
                ok(["reschedule_sensor", "deferred_sensor", "defer_then_return", "hitl", "after_hitl"]),
            )
            reschedules = session.scalar(
                select(func.count()).select_from(TaskReschedule).join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id).where(
                    TaskInstance.dag_id == "e2e_waiting", TaskInstance.task_id == "reschedule_sensor"
                )
            )
            self.check("reschedule sensor rescheduled twice", reschedules, 2)
            self.check("sensor pokes counted through Variable.set", Variable.get("e2e_pokes"), "3")
            self.check("deferred operator resumed with its kwargs", xcom("e2e_waiting", "defer_then_return"), {"carried": {"n": 2**63 + 5, "s": "kept"}, "event_was_set": True})
            for task_id in ("deferred_sensor", "defer_then_return"):
                trigger_logs = list((self.logs / "airflow" / "dag_id=e2e_waiting").glob(f"run_id=*/task_id={task_id}/*.trigger.*.log"))
                self.check(f"{task_id} ran a trigger on the triggerer", bool(trigger_logs), True)
            self.check("HITL default applied on timeout", xcom("e2e_waiting", "after_hitl"), ["yes"])

            # Assets.
            self.check("e2e_producer tasks", states("e2e_producer"), ok(["produce"]))
            events = session.execute(
                select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_task_id).join(AssetModel, AssetModel.id == AssetEvent.asset_id).where(
                    AssetModel.uri == "e2e://produced/table"
                )
            ).all()
            self.check("asset event", [tuple(e) for e in events], [({"rows": 42, "big": 2**64 - 2}, "e2e_producer", "produce")])
            self.check("e2e_consumer tasks", states("e2e_consumer"), ok(["consume"]))
            self.check("consumer read the triggering event", xcom("e2e_consumer", "consume"), [{"rows": 42, "big": 2**64 - 2}])

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        if self.args.verify_only:
            self.verify()
            for failure in self.failures:
                log(f"  - {failure}")
            return 1 if self.failures else 0
        stop_faults = threading.Event()
        faults = None
        try:
            self.migrate_and_seed()
            self.start_server()
            self.start_airflow()
            self.wait_parsed()
            self.trigger()
            if self.args.fault:
                faults = threading.Thread(target=self.fault_loop, args=(stop_faults,), daemon=True)
                faults.start()
            self.wait_finished(self.args.timeout)
            stop_faults.set()
            if faults:
                faults.join(timeout=60)
                if self.kills < MIN_KILLS:
                    self.failures.append(
                        f"the fault run killed the server only {self.kills} times (want >= {MIN_KILLS})"
                    )
                else:
                    log(f"the server was killed {self.kills} times with SIGKILL while DAGs ran")
            if self.args.fault:
                # The workers' retries of calls the kills cut off (tenacity's retry log line,
                # written by the task supervisors into the scheduler's log).
                retried = self.retried_calls()
                log(f"workers retried {retried} calls the kills cut off")
                if retried == 0:
                    self.failures.append("no worker call was cut off by a kill: the fault run proved nothing")
            self.verify()
            # Our server runs with its defaults, strict ownership among them: no worker call
            # may have been refused by a token policy.
            refused = [
                line
                for line in (self.logs / "server.log").read_text(errors="replace").splitlines()
                if "execution_api::access" in line and (" status=401 " in line or " status=403 " in line)
            ]
            self.check("worker calls refused by a token policy", refused[:5], [])
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            stop_faults.set()
            self.procs.stop_all()
        took = time.monotonic() - started
        if self.failures:
            # The log tails first and the verdict last, so that a reader of a truncated CI log
            # (which keeps its end) still sees what failed.
            for name in ("server", "scheduler"):
                path = self.logs / f"{name}.log"
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-40:]
                    log(f"--- last lines of {path}")
                    print("\n".join(tail), flush=True)
            log(f"logs: {self.logs}")
            log(f"FAILED ({self.backend}{', fault run' if self.args.fault else ''}, {took:.0f} s):")
            for failure in self.failures:
                log(f"  - {failure}")
            return 1
        log(f"PASSED ({self.backend}{', fault run' if self.args.fault else ''}, {took:.0f} s)")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="our server binary")
    parser.add_argument("--work", required=True, help="a fresh directory for the deployment")
    parser.add_argument("--postgres-url", help="run on this PostgreSQL database (dropped and recreated)")
    parser.add_argument("--fault", action="store_true", help="SIGKILL and restart our server while DAGs run")
    parser.add_argument("--verify-only", action="store_true", help="only check the deployment left in --work")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for every DAG run to finish")
    args = parser.parse_args()
    args.server = str(Path(args.server).resolve())
    return Deployment(args).run()


if __name__ == "__main__":
    sys.exit(main())
