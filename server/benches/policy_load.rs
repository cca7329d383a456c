//! Cost of the policy under load (issue 5, Performance 1).
//!
//! One actix app, one worker, two no-op handlers: `GET /open/{task_instance_id}` (unprotected)
//! and `GET /protected/{task_instance_id}` behind `#[execution_route(get, "/{task_instance_id}",
//! scopes = ["ti:self"])]` (mounted in `web::scope("/protected")`).
//! For HS512, HS256, EdDSA and RS256 tokens, with the verified-token cache on (default capacity) and off
//! (capacity 0), `wrk --latency` is run against the open and the protected route alternately,
//! with the same `Authorization` header on both, and the figures are printed as a Markdown table.
//!
//! Run it through `.ci/bench-load`, which builds it and pins this process (server) to CPU 0 and
//! wrk to CPU 1. Flags (after `--`): `--secs N` (per run, default 3), `--connections N`
//! (default 16), `--rounds N` (open/protected pairs per configuration, default 5),
//! `--only HS512|HS256|EdDSA|RS256`, `--wrk-cpu N` (default 1; `none` to leave wrk unpinned).
//! Figures, not assertions: a missed target is reported, never a failure.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use policy_core::{
    GeneratorConfig, KeySource, SigningKey, TokenGenerator, TokenType, TokenValidator,
    ValidationConfig,
};
use policy_macros::execution_route;

const HS512_SECRET: &[u8] = b"bench-secret-0123456789-bench-secret-0123456789-bench-secret-0123";
const ED25519_PEM: &[u8] = include_bytes!("../../policy-core/src/testdata/ed25519_private.pem");
const RSA_PEM: &[u8] = include_bytes!("../../policy-core/src/testdata/rsa_private.pem");

/// The unprotected no-op handler.
async fn open() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// The same no-op handler behind the policy, mounted under `/protected`.
#[execution_route(get, "/{task_instance_id}", scopes = ["ti:self"])]
async fn protected() -> HttpResponse {
    HttpResponse::Ok().finish()
}

struct Opts {
    secs: u64,
    connections: u32,
    rounds: u32,
    only: Option<String>,
    wrk_cpu: Option<String>,
}

fn parse_opts() -> Opts {
    let mut opts = Opts {
        secs: 3,
        connections: 16,
        rounds: 5,
        only: None,
        wrk_cpu: Some("1".to_owned()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--secs" => opts.secs = value().parse().expect("--secs N"),
            "--connections" => opts.connections = value().parse().expect("--connections N"),
            "--rounds" => opts.rounds = value().parse().expect("--rounds N"),
            "--only" => opts.only = Some(value()),
            "--wrk-cpu" => {
                let v = value();
                opts.wrk_cpu = (v != "none").then_some(v);
            }
            other => panic!("unknown flag {other}"),
        }
    }
    opts
}

/// One `wrk` run's figures.
#[derive(Clone, Copy, Debug, Default)]
struct WrkRun {
    requests: u64,
    /// CPU time this process (the server) spent during the run, from `/proc/self/task/*/schedstat`.
    server_cpu_ns: u64,
    secs: f64,
    rps: f64,
    p99_us: f64,
    errors: u64,
}

fn parse_latency_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let num: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => num,
        "ms" => num * 1e3,
        "s" => num * 1e6,
        "m" => num * 60e6,
        _ => return None,
    })
}

/// Parses `wrk --latency` output.
fn parse_wrk(out: &str) -> WrkRun {
    let mut run = WrkRun::default();
    for line in out.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.rps = rest.trim().parse().expect("Requests/sec");
        } else if let Some(rest) = line.strip_prefix("99%") {
            run.p99_us = parse_latency_us(rest).expect("99% latency");
        } else if line.contains(" requests in ") {
            run.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("request count");
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += rest.trim().parse::<u64>().expect("non-2xx count");
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    run
}

/// CPU time consumed so far by this process's threads (ns), the server being the only busy one.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

fn wrk(opts: &Opts, url: &str, token: &str, secs: u64) -> WrkRun {
    let mut cmd = match &opts.wrk_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpu, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    cmd.args([
        "-t1".to_owned(),
        format!("-c{}", opts.connections),
        format!("-d{secs}s"),
        "--latency".to_owned(),
        "-H".to_owned(),
        format!("Authorization: Bearer {token}"),
        url.to_owned(),
    ]);
    let cpu_before = cpu_ns();
    let out = cmd.output().expect("running wrk (apt-get install -y wrk)");
    let server_cpu_ns = cpu_ns() - cpu_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    WrkRun {
        server_cpu_ns,
        secs: secs as f64,
        ..parse_wrk(&stdout)
    }
}

struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: thread::JoinHandle<std::io::Result<()>>,
}

fn start(validator: TokenValidator) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(validator.clone())
                    // Each under its own static scope, so that neither request pays for the
                    // other's path pattern (actix tries resources in order; a scope's static
                    // prefix is a cheap string comparison, a `{param}` pattern a regex).
                    .service(web::scope("/open").route("/{task_instance_id}", web::get().to(open)))
                    .service(web::scope("/protected").service(ProtectedRoute))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
            tx.send(server.handle()).expect("send handle");
            server.await
        })
    });
    let handle = rx.recv().expect("server started");
    Server {
        addr,
        handle,
        thread,
    }
}

impl Server {
    fn stop(self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        self.thread
            .join()
            .expect("server thread")
            .expect("server ran");
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn main() {
    let opts = parse_opts();
    let keys = [
        (
            "HS512",
            SigningKey::from_secret(HS512_SECRET, policy_core::Algorithm::HS512, None)
                .expect("HS512 key"),
        ),
        // HS256 shows the same check where the CPU has SHA-256 instructions
        // (SHA-512 has none on x86 CPUs of this generation).
        (
            "HS256",
            SigningKey::from_secret(HS512_SECRET, policy_core::Algorithm::HS256, None)
                .expect("HS256 key"),
        ),
        (
            "EdDSA",
            SigningKey::from_pem(ED25519_PEM).expect("Ed25519 key"),
        ),
        ("RS256", SigningKey::from_pem(RSA_PEM).expect("RSA key")),
    ];
    let ti = uuid::Uuid::new_v4();
    println!(
        "policy_load: wrk -t1 -c{} -d{}s --latency, {} round(s) of open/protected per row, server 1 worker",
        opts.connections, opts.secs, opts.rounds
    );
    let mut rows = Vec::new();
    for (name, key) in &keys {
        if opts.only.as_deref().is_some_and(|only| only != *name) {
            continue;
        }
        for cache in [true, false] {
            let config = ValidationConfig {
                cache_capacity: if cache {
                    ValidationConfig::default().cache_capacity
                } else {
                    0
                },
                ..ValidationConfig::default()
            };
            let validator =
                TokenValidator::new(KeySource::signing_key(key), config).expect("validator");
            let generator = TokenGenerator::new(key.clone(), GeneratorConfig::default());
            let token = generator
                .generate(ti, TokenType::Execution, Duration::from_secs(4 * 3600))
                .expect("token");
            let server = start(validator.clone());
            let open_url = format!("http://{}/open/{ti}", server.addr);
            let protected_url = format!("http://{}/protected/{ti}", server.addr);

            // Warm-up (connections, caches, allocator), not counted.
            wrk(&opts, &open_url, &token, 1);
            wrk(&opts, &protected_url, &token, 1);

            let (mut open_runs, mut protected_runs) = (Vec::new(), Vec::new());
            let mut protected_requests = 0;
            let before = validator.signature_verifications();
            for _ in 0..opts.rounds {
                open_runs.push(wrk(&opts, &open_url, &token, opts.secs));
                let run = wrk(&opts, &protected_url, &token, opts.secs);
                protected_requests += run.requests;
                protected_runs.push(run);
            }
            let verifications = validator.signature_verifications() - before;
            server.stop();

            let mean = |runs: &[WrkRun], f: fn(&WrkRun) -> f64| {
                runs.iter().map(f).sum::<f64>() / runs.len() as f64
            };
            let open_rps = mean(&open_runs, |r| r.rps);
            let prot_rps = mean(&protected_runs, |r| r.rps);
            let errors: u64 = open_runs
                .iter()
                .chain(&protected_runs)
                .map(|r| r.errors)
                .sum();
            // Each round is an adjacent open/protected pair: the median of the pairs' ratios
            // resists the drift of a shared machine better than the ratio of the means.
            let ratio = median(
                open_runs
                    .iter()
                    .zip(&protected_runs)
                    .map(|(o, p)| p.rps / o.rps)
                    .collect(),
            );
            let cpu_us = |runs: &[WrkRun]| {
                runs.iter().map(|r| r.server_cpu_ns).sum::<u64>() as f64
                    / 1e3
                    / runs.iter().map(|r| r.requests).sum::<u64>().max(1) as f64
            };
            let (open_cpu, prot_cpu) = (cpu_us(&open_runs), cpu_us(&protected_runs));
            // The server's share of its CPU during the runs (1.0 = it had CPU 0 to itself).
            let share = open_runs
                .iter()
                .chain(&protected_runs)
                .map(|r| r.server_cpu_ns as f64 / 1e9 / r.secs)
                .fold(f64::INFINITY, f64::min);
            let target = cache || *name == "HS512";
            let verdict = match (target, ratio >= 0.9) {
                (false, _) => "(no target)",
                (true, true) => "met",
                (true, false) => "MISSED",
            };
            let row = format!(
                "| {name} | {} | {:.0} | {} | {:.0} | {} | {:.1} % | {verdict} | {:.1} / {:.1} | {:.1} % | {:.0} % | {:.4} | {errors} |",
                if cache { "on" } else { "off" },
                open_rps,
                fmt_us(median(open_runs.iter().map(|r| r.p99_us).collect())),
                prot_rps,
                fmt_us(median(protected_runs.iter().map(|r| r.p99_us).collect())),
                ratio * 100.0,
                open_cpu,
                prot_cpu,
                open_cpu / prot_cpu * 100.0,
                share * 100.0,
                verifications as f64 / protected_requests.max(1) as f64,
            );
            println!("{row}");
            rows.push(row);
        }
    }
    println!();
    println!(
        "| token | cache | open req/s | open p99 | protected req/s | protected p99 | protected/open (median of pairs) | target ≥ 90 % | server CPU µs/req open / protected | open/protected CPU per req | min server CPU share | signature checks per protected request | errors (non-2xx + socket) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}
