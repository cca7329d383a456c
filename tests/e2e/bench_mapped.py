"""Deployment-scale benchmark: a real Airflow 3.3.2 deployment runs one mapped DAG of N task
instances (bench_dags/bench_mapped.py) with its workers served first by Airflow's own
`airflow api-server --apps execution`, then by our server; everything else equal (a fresh
`airflow db migrate` database of the same backend, the same scheduler/dag-processor/triggerer
settings, the same machine).

    python tests/e2e/bench_mapped.py --server target/release/server --work DIR \
        [--postgres-url postgres://user@host:port/db] [--tasks 500] [--only ours|airflow]

Reports per Execution API server: the DAG run's wall time (dag_run start to end), the server's
CPU seconds (user and system, its whole process tree, sampled from /proc every 0.2 s from the
trigger to the run's end) in total and per task instance, its peak resident memory (sum over the
tree), and the number of Execution API requests it answered (from its access log, health checks
left out). Every task instance must succeed and the reducer's XCom must be exact, or the figures are
not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as e2e  # noqa: E402

BENCH_DAGS = Path(__file__).resolve().parent / "bench_dags"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """`root` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_and_rss(pid: int) -> tuple[tuple[float, float], int] | None:
    """(user, system) CPU seconds and resident bytes of `pid`."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            rss_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    # utime, stime (fields 14, 15 of stat; here shifted by the two before ")").
    return (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK), rss_pages * PAGE


def requests_answered(log: Path) -> int:
    """Execution API requests in a server's access log, health checks left out: our
    `execution_api::access` lines, Airflow's `[http.access]` ones."""
    count = 0
    with open(log, errors="replace") as f:
        for line in f:
            if ("execution_api::access" in line or "[http.access]" in line) and " path=/execution/" in line and " path=/execution/health" not in line:
                count += 1
    return count


class Sampler(threading.Thread):
    """CPU seconds and peak RSS of a process tree, sampled until stopped."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root = root
        self.stop = threading.Event()
        self.cpu: dict[int, tuple[float, float]] = {}
        self.baseline: dict[int, tuple[float, float]] = {}
        self.peak_rss = 0

    def sample(self) -> None:
        rss = 0
        for pid in tree(self.root):
            got = cpu_and_rss(pid)
            if got is None:
                continue
            cpu, r = got
            self.cpu[pid] = cpu
            rss += r
        self.peak_rss = max(self.peak_rss, rss)

    def start_measuring(self) -> None:
        self.sample()
        self.baseline = dict(self.cpu)
        self.start()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sample()

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds since the baseline."""
        user = sum(u - self.baseline.get(pid, (0.0, 0.0))[0] for pid, (u, _) in self.cpu.items())
        system = sum(s - self.baseline.get(pid, (0.0, 0.0))[1] for pid, (_, s) in self.cpu.items())
        return user, system


class Bench(e2e.Deployment):
    def __init__(self, args, api: str):
        args.work = str(Path(args.base_work) / api)
        if args.postgres_url:
            # A database per server (this process still holds connections to the last one).
            args.postgres_url = f"{args.postgres_url}_{api}"
        args.fault = False
        args.verify_only = False
        super().__init__(args, dags=BENCH_DAGS)
        self.api = api
        self.env["BENCH_MAPPED_TASKS"] = str(args.tasks)
        # Room for the mapped tasks: the scheduler's defaults otherwise cap a DAG at 16.
        self.env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] = "64"
        self.env["AIRFLOW__CORE__PARALLELISM"] = str(args.parallelism)
        os.environ.update(self.env)

    def seed(self) -> None:
        """The mapped DAG needs no variables or connections."""

    def start_api(self) -> None:
        if self.api == "ours":
            self.start_server()
            return
        self.procs.start(
            "server",
            [str(self.venv_bin / "airflow"), "api-server", "--apps", "execution", "--port", str(self.port), "--host", "127.0.0.1"],
            self.env,
        )
        e2e.wait_until(
            "Airflow's api-server to answer /execution/health",
            lambda: e2e.http_ok(f"http://127.0.0.1:{self.port}/execution/health"),
            180,
            0.5,
        )

    def measure(self) -> dict:
        from sqlalchemy import func, select

        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.models import DagRun, TaskInstance
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from airflow.utils.types import DagRunTriggeredByType

        def parsed():
            with create_session() as session:
                return session.scalar(select(SerializedDagModel.dag_id).where(SerializedDagModel.dag_id == "bench_mapped"))

        e2e.wait_until("the dag-processor to parse bench_mapped", parsed, 240, 1)
        sampler = Sampler(self.procs.procs["server"].pid)
        sampler.start_measuring()
        trigger_dag("bench_mapped", run_id="bench", triggered_by=DagRunTriggeredByType.CLI)
        e2e.log(f"triggered bench_mapped ({self.args.tasks} mapped task instances) on {self.api}")

        def finished():
            with create_session() as session:
                state = session.scalar(select(DagRun.state).where(DagRun.dag_id == "bench_mapped"))
                done = session.scalar(
                    select(func.count()).select_from(TaskInstance).where(
                        TaskInstance.dag_id == "bench_mapped", TaskInstance.state.in_(["success", "failed", "upstream_failed"])
                    )
                )
            if int(time.monotonic()) % 30 == 0:
                e2e.log(f"{done} task instances finished; run {state}")
            return str(state) in ("success", "failed")

        e2e.wait_until("bench_mapped to finish", finished, self.args.timeout, 1)
        sampler.stop.set()
        sampler.join()
        sampler.sample()
        with create_session() as session:
            run = session.execute(select(DagRun.state, DagRun.start_date, DagRun.end_date).where(DagRun.dag_id == "bench_mapped")).one()
            states = dict(
                session.execute(
                    select(TaskInstance.state, func.count()).where(TaskInstance.dag_id == "bench_mapped").group_by(TaskInstance.state)
                ).all()
            )
            total = session.scalar(select(XComModel.value).where(XComModel.dag_id == "bench_mapped", XComModel.task_id == "total"))
        task_instances = sum(states.values())
        want_total = sum(i * i for i in range(self.args.tasks))
        if str(run.state) != "success" or states != {"success": self.args.tasks + 2} or total != want_total:
            raise RuntimeError(f"the run did not complete as expected: run {run.state}, states {states}, total {total} (want {want_total})")
        user, system = sampler.cpu_seconds()
        cpu = user + system
        return {
            "api": self.api,
            "backend": self.backend,
            "task_instances": task_instances,
            "wall_s": (run.end_date - run.start_date).total_seconds(),
            "cpu_s": cpu,
            "cpu_ms_per_task": 1000 * cpu / task_instances,
            "user_ms_per_task": 1000 * user / task_instances,
            "system_ms_per_task": 1000 * system / task_instances,
            "peak_rss_mib": sampler.peak_rss / 2**20,
            "requests": requests_answered(self.logs / "server.log"),
        }

    def bench(self) -> dict:
        try:
            self.migrate_and_seed()
            self.start_api()
            self.start_airflow()
            return self.measure()
        finally:
            self.procs.stop_all()


def report(results: list[dict]) -> None:
    """The log lines, the markdown table and, for both servers, the ratios."""
    for r in results:
        e2e.log(
            f"{r['api']:8} {r['backend']:8} {r['task_instances']} TIs  wall {r['wall_s']:.0f} s  "
            f"server CPU {r['cpu_s']:.1f} s ({r['cpu_ms_per_task']:.1f} ms/task: user {r['user_ms_per_task']:.1f}, system {r['system_ms_per_task']:.1f})  peak RSS {r['peak_rss_mib']:.1f} MiB  "
            f"{r['requests']} requests ({r['requests'] / r['task_instances']:.1f} per task)"
        )
    print()
    print("| Execution API server | database | task instances | wall time | server CPU | CPU per task (user + system) | peak RSS | requests per task |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        name = "Airflow 3.3.2 `api-server --apps execution`" if r["api"] == "airflow" else "ours (`server serve`)"
        print(
            f"| {name} | {r['backend']} | {r['task_instances']} | {r['wall_s']:.0f} s | {r['cpu_s']:.1f} s | "
            f"{r['cpu_ms_per_task']:.1f} ms ({r['user_ms_per_task']:.1f} + {r['system_ms_per_task']:.1f}) | "
            f"{r['peak_rss_mib']:.1f} MiB | {r['requests'] / r['task_instances']:.1f} |"
        )
    if len(results) == 2:
        a, o = results
        print()
        print(
            f"ours vs Airflow: {a['cpu_s'] / max(o['cpu_s'], 1e-9):.0f}x less CPU per task "
            f"(user {a['user_ms_per_task'] / max(o['user_ms_per_task'], 1e-9):.0f}x, "
            f"system {a['system_ms_per_task'] / max(o['system_ms_per_task'], 1e-9):.0f}x), "
            f"{a['peak_rss_mib'] / o['peak_rss_mib']:.0f}x less peak RSS"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="our server binary (release)")
    parser.add_argument("--work", dest="base_work", required=True, help="a fresh directory")
    parser.add_argument("--postgres-url", help="run on this PostgreSQL database (dropped and recreated)")
    parser.add_argument("--tasks", type=int, default=500, help="mapped task instances")
    parser.add_argument("--parallelism", type=int, default=8, help="[core] parallelism (LocalExecutor workers)")
    parser.add_argument("--only", choices=["ours", "airflow"], help="benchmark one server only")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    args.server = str(Path(args.server).resolve())
    results = []
    if args.only:
        result = Bench(args, args.only).bench()
        (Path(args.base_work) / f"{args.only}.json").write_text(json.dumps(result))
        results.append(result)
    else:
        # One process per server: Airflow's models bind this process to one database.
        for api in ["airflow", "ours"]:
            subprocess.run([sys.executable, *sys.argv, "--only", api], check=True)
            results.append(json.loads((Path(args.base_work) / f"{api}.json").read_text()))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
