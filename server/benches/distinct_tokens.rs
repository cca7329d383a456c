//! A small load generator for issue 5, Performance 3: requests that each carry a
//! freshly minted, distinct HS512 token, against a running `server`, printing the
//! server's resident memory (`/proc/<pid>/status`) at checkpoints.
//!
//! wrk cannot sign tokens, and a file of a million tokens would weigh more than the
//! server, so this mints them on the fly (`policy_core::TokenGenerator`, a new `jti`
//! each) over keep-alive HTTP/1.1 connections (std only). Every response must be 200.
//!
//! Run by `.ci/bench-peer`. Flags (after `--`): `--addr HOST:PORT`, `--secret S`
//! (the server's `AIRFLOW__API_AUTH__JWT_SECRET`), `--sub UUID`, `--path /execution/...`,
//! `--connections N` (one thread each, default 4), `--checkpoints 10000,100000,...`,
//! `--server-pid PID`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use policy_core::{Algorithm, GeneratorConfig, SigningKey, TokenGenerator, TokenType};

struct Opts {
    addr: String,
    secret: String,
    sub: uuid::Uuid,
    path: String,
    connections: usize,
    checkpoints: Vec<u64>,
    server_pid: Option<u32>,
}

fn parse_opts() -> Opts {
    let mut addr = None;
    let mut secret = None;
    let mut sub = None;
    let mut path = None;
    let mut connections = 4;
    let mut checkpoints = vec![10_000, 100_000, 1_000_000];
    let mut server_pid = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--addr" => addr = Some(value()),
            "--secret" => secret = Some(value()),
            "--sub" => sub = Some(value().parse().expect("--sub UUID")),
            "--path" => path = Some(value()),
            "--connections" => connections = value().parse().expect("--connections N"),
            "--checkpoints" => {
                checkpoints = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--checkpoints N,N,..."))
                    .collect();
            }
            "--server-pid" => server_pid = Some(value().parse().expect("--server-pid PID")),
            other => panic!("unknown flag {other}"),
        }
    }
    Opts {
        addr: addr.expect("--addr"),
        secret: secret.expect("--secret"),
        sub: sub.expect("--sub"),
        path: path.expect("--path"),
        connections: connections.max(1),
        checkpoints,
        server_pid,
    }
}

/// `VmRSS` and `VmHWM` of `pid` in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect to server");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            stream,
        }
    }

    /// Sends one GET and reads the whole response; returns the status.
    fn get(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).expect("send request");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        status
    }
}

fn main() {
    let opts = Arc::new(parse_opts());
    let key =
        SigningKey::from_secret(opts.secret.as_bytes(), Algorithm::HS512, None).expect("HS512 key");
    let generator = TokenGenerator::new(key, GeneratorConfig::default());
    let sent = Arc::new(AtomicU64::new(0));
    let non_200 = Arc::new(AtomicU64::new(0));

    if let Some(pid) = opts.server_pid {
        let (rss, hwm) = memory_kib(pid);
        println!(
            "| 0 | {:.1} | {:.1} | - |",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    let started = Instant::now();
    for &checkpoint in &opts.checkpoints {
        let workers: Vec<_> = (0..opts.connections)
            .map(|_| {
                let (opts, generator) = (Arc::clone(&opts), generator.clone());
                let (sent, non_200) = (Arc::clone(&sent), Arc::clone(&non_200));
                thread::spawn(move || {
                    let mut conn = Conn::open(&opts.addr);
                    while sent.fetch_add(1, Ordering::Relaxed) < checkpoint {
                        let token = generator
                            .generate(opts.sub, TokenType::Execution, Duration::from_secs(3600))
                            .expect("mint");
                        let request = format!(
                            "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
                            opts.path, opts.addr
                        );
                        if conn.get(request.as_bytes()) != 200 {
                            non_200.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("load thread");
        }
        // fetch_add overshoots by one per thread at the end; the real count is the checkpoint.
        sent.store(checkpoint, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        match opts.server_pid {
            Some(pid) => {
                let (rss, hwm) = memory_kib(pid);
                println!(
                    "| {checkpoint} | {:.1} | {:.1} | {:.0} |",
                    rss as f64 / 1024.0,
                    hwm as f64 / 1024.0,
                    checkpoint as f64 / elapsed
                );
            }
            None => println!(
                "{checkpoint} requests, {:.0} req/s",
                checkpoint as f64 / elapsed
            ),
        }
    }
    let bad = non_200.load(Ordering::Relaxed);
    println!("non-200 responses: {bad}");
    if bad > 0 {
        std::process::exit(1);
    }
}
