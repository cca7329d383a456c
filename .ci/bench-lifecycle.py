"""Driver of .ci/bench-lifecycle: SERVER PORT PID TASKS GAP (see there)."""

import glob
import http.client
import json
import os
import subprocess
import sys
import time

server, port, pid, tasks, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
run = f"lifecycle_{int(time.time())}"
calls_kind = os.environ.get("LIFECYCLE_CALLS", "task")
if calls_kind not in ("task", "health"):
    raise SystemExit(f"LIFECYCLE_CALLS={calls_kind}: expected task or health")


def cli(*args):
    return subprocess.check_output([server, *args], text=True, stderr=subprocess.DEVNULL).strip()


instances = []
for i in range(tasks):
    ti = cli("ti", "create", "--dag-id", "lifecycle", "--task-id", "t", "--run-id", run, "--map-index", str(i))
    instances.append((i, ti, cli("token", "mint", "--sub", ti, "--scope", "execution")))


def threads():
    """Per thread of the server: (user CPU ticks, system CPU ticks, context switches)."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        name = open(f"{task}/comm").read().strip()
        fields = open(f"{task}/stat").read().rsplit(")", 1)[1].split()
        switches = sum(int(line.split()[1]) for line in open(f"{task}/status") if "ctxt_switches" in line)
        out[f"{name} ({task.rsplit('/', 1)[1]})"] = (int(fields[11]), int(fields[12]), switches)
    return out


before = threads()
failed = []
for i, ti, token in instances:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Airflow-API-Version": "2026-06-30"}
    xcom = f"/execution/xcoms/lifecycle/{run}/t/return_value?map_index={i}"
    calls = [
        ("PATCH", f"/execution/task-instances/{ti}/run",
         {"state": "running", "hostname": "h", "unixname": "u", "pid": 1, "start_date": "2026-12-03T00:00:00Z"}, {200}),
        ("PUT", f"/execution/task-instances/{ti}/heartbeat", {"hostname": "h", "pid": 1}, {204}),
        ("PUT", f"/execution/task-instances/{ti}/rtif", {"op_args": "[]"}, {201}),
        # HEAD counts the key's values over all map indexes (Airflow refuses `map_index` on it).
        ("HEAD", xcom.split("?")[0], None, {200, 404}),
        ("POST", xcom, 42, {201}),
        ("GET", xcom, None, {200}),
        ("PATCH", f"/execution/task-instances/{ti}/state", {"state": "success", "end_date": "2026-12-03T00:00:01Z"}, {204}),
    ]
    if calls_kind != "task":
        # The floor under the task's figure: the same 7 requests on the same
        # schedule, answered without the database or a token.
        calls = [("GET", "/execution/health", None, {200})] * len(calls)
    for method, path, body, ok in calls:
        time.sleep(gap)
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status not in ok:
            failed.append(f"{method} {path}: {response.status}")
    conn.close()
after = threads()
if failed:
    raise SystemExit("unexpected answers:\n" + "\n".join(failed[:20]))
tick = os.sysconf("SC_CLK_TCK")


def per_task(field: int, thread: str | None = None) -> float:
    """A field's growth per task: all threads, or one."""
    names = after if thread is None else [thread]
    return sum(after[t][field] - before.get(t, (0, 0, 0))[field] for t in names) / tasks


def ms(ticks: float) -> float:
    return ticks / tick * 1000


user, system = ms(per_task(0)), ms(per_task(1))
print(f"{tasks} tasks, 7 calls each ({calls_kind}): server CPU {user + system:.2f} ms per task "
      f"(user {user:.2f}, system {system:.2f}), {per_task(2):.1f} context switches per task")
for t in sorted(after):
    if after[t] != before.get(t, (0, 0, 0)):
        print(f"  {t:32} CPU {ms(per_task(0, t) + per_task(1, t)):5.2f} ms/task  switches {per_task(2, t):5.1f}/task")
