//! How many concurrently running tasks one Execution API server holds (issue 11, item 3):
//! a load generator that simulates T running tasks against a running server, ours or
//! Airflow's, and finds the largest T served at p99 < 100 ms with no error.
//!
//! Each simulated task has its own HS512 execution token (`sub` = its task instance id,
//! minted with `policy_core::TokenGenerator` and the server's secret) and
//!
//! - heartbeats every `--heartbeat-interval` seconds (5, Airflow's `[workers]
//!   min_heartbeat_interval`): `PUT {prefix}/task-instances/{id}/heartbeat` with its own
//!   hostname and pid, as the Task SDK's supervisor does;
//! - every `--other-interval` seconds (30) makes one of the other calls a task makes, in
//!   turn: `GET /variables/{key}` (Fernet), `GET /connections/{id}` (Fernet),
//!   `GET /xcoms/...` (an upstream task's `return_value`), `POST /xcoms/...` (its own
//!   `return_value`), `PUT /task-instances/{id}/rtif`.
//!
//! The calls are spread evenly over each interval (task k heartbeats at k x 5 s / T within
//! every period), so T tasks make T x (1/5 + 1/30) requests per second. The schedule is
//! open-loop: a request's latency runs from the moment it was due, not from when a
//! connection became free, so a server that falls behind is charged for the wait (no
//! coordinated omission). The requests go over a bounded pool of keep-alive HTTP/1.1
//! connections, one per 2 requests/s offered, at least 4 and at most `--connections` (64;
//! one thread each, std only), spread round-robin over
//! the `--addr` list (several addresses: the generator is the load balancer). A connection
//! idle for 4 s is reopened before use (both servers close idle keep-alive connections
//! after 5 s), and a request that finds a reused connection closed before any byte of the
//! answer is sent once more on a new one, as HTTP clients do; both are counted.
//!
//! A step runs T tasks for `--warmup` seconds, then measures `--measure` seconds: requests
//! due in that window, errors (any status outside 2xx, any connection or protocol error),
//! p50/p99/max latency, the servers' CPU (`--server-pids`), this process's CPU and each
//! CPU's busy share (`/proc/stat`). A step passes with p99 < `--p99-limit-ms` and no
//! error; a step that fails is run once more and counts as failed only if that run fails
//! too (the machine this was written on is shared). `--tasks T` runs one step; `--search START,MAX` doubles T from START until a step
//! fails (or MAX), then bisects to within `--precision` (10 %), and prints the largest T
//! that passed.
//!
//! Run by `.ci/bench-capacity`. The task instances come from `--tis FILE` (lines
//! `id task_id pid`, written by `.ci/bench-capacity-setup.py`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use policy_core::{Algorithm, GeneratorConfig, SigningKey, TokenGenerator, TokenType};

struct Opts {
    addrs: Vec<String>,
    prefix: String,
    secret: String,
    tis: String,
    connections: usize,
    heartbeat_interval: f64,
    other_interval: f64,
    warmup: f64,
    measure: f64,
    cooldown: f64,
    p99_limit_ms: f64,
    precision: f64,
    tasks: Option<usize>,
    search: Option<(usize, usize)>,
    server_pids: Vec<u32>,
    label: String,
    hostname: String,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        addrs: Vec::new(),
        prefix: "/execution".into(),
        secret: String::new(),
        tis: String::new(),
        connections: 64,
        heartbeat_interval: 5.0,
        other_interval: 30.0,
        warmup: 5.0,
        measure: 20.0,
        cooldown: 3.0,
        p99_limit_ms: 100.0,
        precision: 0.1,
        tasks: None,
        search: None,
        server_pids: Vec::new(),
        label: "server".into(),
        hostname: "capacity-host".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        let float = |v: String| -> f64 { v.parse().unwrap_or_else(|_| panic!("bad number {v}")) };
        match arg.as_str() {
            "--bench" => {}
            "--addr" => o.addrs = value().split(',').map(str::to_owned).collect(),
            "--prefix" => o.prefix = value(),
            "--secret" => o.secret = value(),
            "--tis" => o.tis = value(),
            "--connections" => o.connections = value().parse().expect("--connections N"),
            "--heartbeat-interval" => o.heartbeat_interval = float(value()),
            "--other-interval" => o.other_interval = float(value()),
            "--warmup" => o.warmup = float(value()),
            "--measure" => o.measure = float(value()),
            "--cooldown" => o.cooldown = float(value()),
            "--p99-limit-ms" => o.p99_limit_ms = float(value()),
            "--precision" => o.precision = float(value()),
            "--tasks" => o.tasks = Some(value().parse().expect("--tasks T")),
            "--search" => {
                let v = value();
                let (a, b) = v.split_once(',').expect("--search START,MAX");
                o.search = Some((
                    a.parse().expect("--search START"),
                    b.parse().expect("--search MAX"),
                ));
            }
            "--server-pids" => {
                o.server_pids = value()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("--server-pids PID,PID"))
                    .collect();
            }
            "--label" => o.label = value(),
            "--hostname" => o.hostname = value(),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!o.addrs.is_empty(), "--addr HOST:PORT[,HOST:PORT...]");
    assert!(!o.secret.is_empty(), "--secret");
    assert!(!o.tis.is_empty(), "--tis FILE");
    assert!(
        o.tasks.is_some() != o.search.is_some(),
        "one of --tasks T or --search START,MAX"
    );
    o.connections = o.connections.max(1);
    o
}

/// One simulated task: its task instance and the parts of its requests that never change.
struct Task {
    id: String,
    task_id: String,
    auth: String,
    heartbeat_body: String,
}

/// The calls a task makes; `Heartbeat` every heartbeat interval, the others in turn.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Heartbeat,
    Variable,
    Connection,
    XcomGet,
    XcomPost,
    Rtif,
}

const OTHER_KINDS: [Kind; 5] = [
    Kind::Variable,
    Kind::Connection,
    Kind::XcomGet,
    Kind::XcomPost,
    Kind::Rtif,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Heartbeat => "PUT heartbeat",
            Kind::Variable => "GET variable",
            Kind::Connection => "GET connection",
            Kind::XcomGet => "GET xcom",
            Kind::XcomPost => "POST xcom",
            Kind::Rtif => "PUT rtif",
        }
    }
}

const DAG: &str = "capacity_dag";
const RUN: &str = "capacity_run";
const XCOM_VALUE: &str = r#"{"rows": 512, "files": ["part-0000.parquet", "part-0001.parquet"]}"#;
const RTIF_BODY: &str = r#"{"bash_command": "python /opt/jobs/load.py --date 2026-12-01 --table events", "env": {"STAGE": "prod"}, "templates_dict": null}"#;

fn request(kind: Kind, task: &Task, prefix: &str, host: &str) -> Vec<u8> {
    let (method, path, body) = match kind {
        Kind::Heartbeat => (
            "PUT",
            format!("{prefix}/task-instances/{}/heartbeat", task.id),
            task.heartbeat_body.as_str(),
        ),
        Kind::Variable => ("GET", format!("{prefix}/variables/capacity_var"), ""),
        Kind::Connection => ("GET", format!("{prefix}/connections/capacity_conn"), ""),
        Kind::XcomGet => (
            "GET",
            format!("{prefix}/xcoms/{DAG}/{RUN}/upstream/return_value"),
            "",
        ),
        Kind::XcomPost => (
            "POST",
            format!("{prefix}/xcoms/{DAG}/{RUN}/{}/return_value", task.task_id),
            XCOM_VALUE,
        ),
        Kind::Rtif => (
            "PUT",
            format!("{prefix}/task-instances/{}/rtif", task.id),
            RTIF_BODY,
        ),
    };
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nAccept: application/json\r\n",
        task.auth
    );
    if method != "GET" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req.into_bytes()
}

/// The open-loop schedule: two evenly spaced streams, heartbeats and other calls, merged.
struct Schedule {
    tasks: u64,
    heartbeat_step: f64,
    other_step: f64,
    other_offset: f64,
    next_heartbeat: u64,
    next_other: u64,
    end: f64,
}

impl Schedule {
    fn new(tasks: usize, opts: &Opts, end: f64) -> Schedule {
        let other_step = opts.other_interval / tasks as f64;
        Schedule {
            tasks: tasks as u64,
            heartbeat_step: opts.heartbeat_interval / tasks as f64,
            other_step,
            // Halfway between two heartbeats of the stream, not on top of one.
            other_offset: opts.heartbeat_interval / tasks as f64 / 2.0,
            next_heartbeat: 0,
            next_other: 0,
            end,
        }
    }

    /// The next request: seconds from the start, task index, kind; `None` past the end.
    fn pop(&mut self) -> Option<(f64, usize, Kind)> {
        let h = self.next_heartbeat as f64 * self.heartbeat_step;
        let o = self.other_offset + self.next_other as f64 * self.other_step;
        let (at, task, kind) = if h <= o {
            let task = self.next_heartbeat % self.tasks;
            self.next_heartbeat += 1;
            (h, task, Kind::Heartbeat)
        } else {
            let (m, t) = (self.next_other, self.tasks);
            // Task k makes call (k + cycle) mod 5 in each cycle: every kind all the time.
            let kind = OTHER_KINDS[((m % t + m / t) % OTHER_KINDS.len() as u64) as usize];
            self.next_other += 1;
            (o, m % t, kind)
        };
        (at < self.end).then_some((at, task as usize, kind))
    }
}

/// One keep-alive connection.
struct Conn {
    addr: String,
    io: Option<(BufReader<TcpStream>, TcpStream)>,
    last_used: Instant,
}

/// How a request went wrong.
enum Failure {
    /// The connection was closed before any byte of the answer: may be retried on a new one.
    Stale(String),
    Other(String),
}

const IDLE_REOPEN: Duration = Duration::from_secs(4);

impl Conn {
    fn new(addr: String) -> Conn {
        Conn {
            addr,
            io: None,
            last_used: Instant::now(),
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        let stream =
            TcpStream::connect(&self.addr).map_err(|e| format!("connect {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        self.io = Some((reader, stream));
        Ok(())
    }

    /// One exchange on the open connection: the status; the connection is dropped
    /// when the server will not keep it or the exchange failed.
    fn exchange_once(&mut self, req: &[u8]) -> Result<u16, Failure> {
        let result = self.exchange(req);
        self.last_used = Instant::now();
        match result {
            Ok((status, keep)) => {
                if !keep {
                    self.io = None;
                }
                Ok(status)
            }
            Err(failure) => {
                self.io = None;
                Err(failure)
            }
        }
    }

    /// Sends one request and reads the whole answer; the status. `reopened` counts
    /// connections opened for it, `retried` a resend after a closed keep-alive connection.
    fn send(&mut self, req: &[u8], reopened: &mut u64, retried: &mut u64) -> Result<u16, String> {
        if self.io.is_some() && self.last_used.elapsed() >= IDLE_REOPEN {
            self.io = None;
        }
        let fresh = self.io.is_none();
        if fresh {
            *reopened += 1;
            self.connect()?;
        }
        match self.exchange_once(req) {
            Err(Failure::Stale(_)) if !fresh => {
                *retried += 1;
                *reopened += 1;
                self.connect()?;
                self.exchange_once(req)
                    .map_err(|(Failure::Stale(e) | Failure::Other(e))| e)
            }
            result => result.map_err(|(Failure::Stale(e) | Failure::Other(e))| e),
        }
    }

    /// (status, whether the connection stays open)
    fn exchange(&mut self, req: &[u8]) -> Result<(u16, bool), Failure> {
        let (reader, stream) = self.io.as_mut().expect("connected");
        if let Err(e) = stream.write_all(req) {
            return Err(match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
                    Failure::Stale(format!("send: {e}"))
                }
                _ => Failure::Other(format!("send: {e}")),
            });
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(Failure::Stale("closed before the answer".into())),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Err(Failure::Stale(format!("status line: {e}")));
            }
            Err(e) => return Err(Failure::Other(format!("status line: {e}"))),
        }
        let other = |m: String| Failure::Other(m);
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| other(format!("bad status line {line:?}")))?;
        let (mut length, mut chunked, mut keep) = (0usize, false, true);
        loop {
            line.clear();
            reader
                .read_line(&mut line)
                .map_err(|e| other(format!("header: {e}")))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().map_err(|_| other("content-length".into()))?;
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    keep = !value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                reader
                    .read_line(&mut line)
                    .map_err(|e| other(format!("chunk: {e}")))?;
                let size =
                    usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| other(format!("bad chunk size {line:?}")))?;
                body.resize(size + 2, 0);
                reader
                    .read_exact(&mut body)
                    .map_err(|e| other(format!("chunk: {e}")))?;
                if size == 0 {
                    break;
                }
            }
        } else if status != 204 && status != 304 {
            body.resize(length, 0);
            reader
                .read_exact(&mut body)
                .map_err(|e| other(format!("body: {e}")))?;
        }
        Ok((status, keep))
    }
}

/// What one connection thread saw in the measured window.
#[derive(Default)]
struct Tally {
    latencies_us: BTreeMap<Kind, Vec<u32>>,
    errors: BTreeMap<String, u64>,
    reopened: u64,
    retried: u64,
    /// The latest any request was sent after it was due, in the window (client lag).
    max_send_delay_us: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (kind, mut v) in other.latencies_us {
            self.latencies_us.entry(kind).or_default().append(&mut v);
        }
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
        self.reopened += other.reopened;
        self.retried += other.retried;
        self.max_send_delay_us = self.max_send_delay_us.max(other.max_send_delay_us);
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// (busy, total) jiffies of each CPU.
fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|s| s.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

struct Outcome {
    passed: bool,
    line: String,
}

fn run_step(opts: &Arc<Opts>, tasks: &Arc<Vec<Task>>, t: usize) -> Outcome {
    let end = opts.warmup + opts.measure;
    let schedule = Arc::new(Mutex::new(Schedule::new(t, opts, end)));
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = opts.warmup;
    let rate = t as f64 * (1.0 / opts.heartbeat_interval + 1.0 / opts.other_interval);
    // About one connection per 2 requests/s offered (at least 4, at most --connections), so
    // that a connection is seldom idle long enough to be reopened at any T.
    let connections =
        ((rate / 2.0).ceil() as usize).clamp(4.min(opts.connections), opts.connections);
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let (opts, tasks, schedule) =
                (Arc::clone(opts), Arc::clone(tasks), Arc::clone(&schedule));
            thread::spawn(move || {
                let addr = opts.addrs[i % opts.addrs.len()].clone();
                let mut conn = Conn::new(addr.clone());
                let mut tally = Tally::default();
                let (mut reopened, mut retried) = (0, 0);
                loop {
                    let Some((at, task, kind)) = schedule.lock().expect("schedule").pop() else {
                        break;
                    };
                    let due = start + Duration::from_secs_f64(at);
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                    }
                    let measured = at >= measure_from;
                    let sent = Instant::now();
                    let req = request(kind, &tasks[task], &opts.prefix, &addr);
                    let (r0, t0) = (reopened, retried);
                    let result = conn.send(&req, &mut reopened, &mut retried);
                    let latency = due.elapsed();
                    if !measured {
                        continue;
                    }
                    tally.reopened += reopened - r0;
                    tally.retried += retried - t0;
                    tally.max_send_delay_us = tally
                        .max_send_delay_us
                        .max(sent.saturating_duration_since(due).as_micros() as u64);
                    match result {
                        Ok(status) if (200..300).contains(&status) => {}
                        Ok(status) => {
                            *tally
                                .errors
                                .entry(format!("{} HTTP {status}", kind.name()))
                                .or_default() += 1;
                        }
                        Err(e) => {
                            *tally
                                .errors
                                .entry(format!("{}: {e}", kind.name()))
                                .or_default() += 1;
                        }
                    }
                    tally
                        .latencies_us
                        .entry(kind)
                        .or_default()
                        .push(latency.as_micros().min(u32::MAX as u128) as u32);
                }
                tally
            })
        })
        .collect();

    // CPU figures over the measured window.
    let window_start = start + Duration::from_secs_f64(measure_from);
    if let Some(wait) = window_start.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    let pids: Vec<String> = opts.server_pids.iter().map(u32::to_string).collect();
    let server_cpu0: f64 = pids.iter().map(|p| cpu_seconds(p)).sum();
    let self_cpu0 = cpu_seconds("self");
    let cpus0 = cpu_times();
    let wall0 = Instant::now();
    let window_end = start + Duration::from_secs_f64(end);
    if let Some(wait) = window_end.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    let wall = wall0.elapsed().as_secs_f64();
    let server_cpu = (pids.iter().map(|p| cpu_seconds(p)).sum::<f64>() - server_cpu0) / wall;
    let self_cpu = (cpu_seconds("self") - self_cpu0) / wall;
    let cpus: Vec<String> = cpu_times()
        .iter()
        .zip(&cpus0)
        .map(|((b1, t1), (b0, t0))| {
            format!(
                "{:.0}%",
                100.0 * (b1 - b0) as f64 / ((t1 - t0) as f64).max(1.0)
            )
        })
        .collect();

    let mut tally = Tally::default();
    for w in workers {
        tally.merge(w.join().expect("load thread"));
    }
    let mut all: Vec<u32> = tally.latencies_us.values().flatten().copied().collect();
    all.sort_unstable();
    let heartbeat = {
        let mut v = tally
            .latencies_us
            .get(&Kind::Heartbeat)
            .cloned()
            .unwrap_or_default();
        v.sort_unstable();
        v
    };
    let mut others: Vec<u32> = tally
        .latencies_us
        .iter()
        .filter(|(k, _)| **k != Kind::Heartbeat)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    others.sort_unstable();
    let errors: u64 = tally.errors.values().sum();
    let p99 = percentile(&all, 99.0);
    let passed = errors == 0 && p99 < opts.p99_limit_ms && !all.is_empty();
    let mut line = format!(
        "STEP {label} tasks={t} offered={rate:.0}/s connections={connections} requests={n} errors={errors} p50={p50:.2}ms p99={p99:.2}ms max={max:.2}ms heartbeat_p99={hp99:.2}ms other_p99={op99:.2}ms server_cpu={scpu:.0}% loadgen_cpu={lcpu:.0}% cpus={cpus} reopened={reopened} retried={retried} max_send_delay={delay:.1}ms {verdict}",
        label = opts.label,
        n = all.len(),
        p50 = percentile(&all, 50.0),
        max = all.last().copied().unwrap_or(0) as f64 / 1000.0,
        hp99 = percentile(&heartbeat, 99.0),
        op99 = percentile(&others, 99.0),
        scpu = server_cpu * 100.0,
        lcpu = self_cpu * 100.0,
        cpus = cpus.join("/"),
        reopened = tally.reopened,
        retried = tally.retried,
        delay = tally.max_send_delay_us as f64 / 1000.0,
        verdict = if passed { "PASS" } else { "FAIL" },
    );
    for (e, n) in tally.errors.iter().take(5) {
        line.push_str(&format!("\n  error x{n}: {e}"));
    }
    Outcome { passed, line }
}

/// Rounds to two significant digits, so that the steps are readable numbers.
fn round2(x: usize) -> usize {
    if x < 100 {
        return x.max(1);
    }
    let scale = 10usize.pow((x as f64).log10().floor() as u32 - 1);
    (x + scale / 2) / scale * scale
}

fn main() {
    let opts = Arc::new(parse_opts());
    let key =
        SigningKey::from_secret(opts.secret.as_bytes(), Algorithm::HS512, None).expect("HS512 key");
    let generator = TokenGenerator::new(key, GeneratorConfig::default());
    let listing = std::fs::read_to_string(&opts.tis).expect("read --tis");
    let tasks: Vec<Task> = listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let (id, task_id, pid) = (
                f.next().expect("id"),
                f.next().expect("task_id"),
                f.next().expect("pid"),
            );
            let sub: uuid::Uuid = id.parse().expect("task instance id");
            let token = generator
                .generate(sub, TokenType::Execution, Duration::from_secs(4 * 3600))
                .expect("mint");
            Task {
                id: id.to_owned(),
                task_id: task_id.to_owned(),
                auth: format!("Bearer {token}"),
                heartbeat_body: format!(r#"{{"hostname":"{}","pid":{pid}}}"#, opts.hostname),
            }
        })
        .collect();
    let tasks = Arc::new(tasks);
    let available = tasks.len();

    let step = |t: usize| -> bool {
        assert!(
            t <= available,
            "{t} tasks asked, {available} task instances in --tis"
        );
        let outcome = run_step(&opts, &tasks, t);
        println!("{}", outcome.line);
        thread::sleep(Duration::from_secs_f64(opts.cooldown));
        if outcome.passed || opts.tasks.is_some() {
            return outcome.passed;
        }
        // On a shared machine one stall of the disk or the CPU fails a step: a failure
        // counts once a second run of the same T fails too.
        let again = run_step(&opts, &tasks, t);
        // The mark on the STEP line itself, before any error lines.
        let (first, rest) = again.line.split_once('\n').unwrap_or((&again.line, ""));
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!("\n{rest}")
        };
        println!("{first} (second run){rest}");
        thread::sleep(Duration::from_secs_f64(opts.cooldown));
        again.passed
    };

    if let Some(t) = opts.tasks {
        let passed = step(t);
        println!(
            "RESULT {} tasks={t} {}",
            opts.label,
            if passed { "PASS" } else { "FAIL" }
        );
        return;
    }
    let (start, max) = opts.search.expect("--search");
    let max = max.min(available);
    // Largest passing and smallest failing T seen.
    let (mut lo, mut hi) = (0usize, usize::MAX);
    let mut t = start.min(max);
    loop {
        if step(t) {
            lo = t;
            if t >= max {
                break;
            }
            t = (t * 2).min(max);
        } else {
            hi = t;
            if lo > 0 || t <= 1 {
                break;
            }
            t = round2(t / 2).max(1);
        }
        if hi != usize::MAX && lo > 0 {
            break;
        }
    }
    while lo > 0 && hi != usize::MAX && (hi - lo) as f64 > opts.precision * lo as f64 {
        let mid = round2(lo + (hi - lo) / 2);
        if mid <= lo || mid >= hi {
            break;
        }
        if step(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let bound = if hi == usize::MAX {
        format!("(every step passed, up to {max})")
    } else {
        format!("(fails at {hi})")
    };
    println!("RESULT {} tasks={lo} {bound}", opts.label);
}
