//! Helpers shared by the binary-level tests: temporary data directories, running the real
//! `server` binary (one-shot CLI commands, or serving on a loopback port), and a minimal
//! HTTP/1.1 client over `std::net::TcpStream` (fallible: a killed server is an error).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The `server` binary under test: `$EXECUTION_API_TEST_SERVER_BIN` when set (`.ci/test` sets
/// it to the release binary it just built, the one operators run), else the one cargo built
/// for this test.
pub fn bin() -> PathBuf {
    std::env::var_os("EXECUTION_API_TEST_SERVER_BIN")
        .filter(|path| !path.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_server")),
            PathBuf::from,
        )
}

/// Safety net against a hung child, not a timing assertion.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);

/// A directory under cargo's per-target temporary dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `server` command with a clean environment: no inherited `AIRFLOW__*`/`EXECUTION_API_*`
/// settings and no `airflow.cfg` (`AIRFLOW_HOME` is a directory that does not exist, unless the
/// test sets its own), so the test's flags are the whole configuration.
pub fn server_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("AIRFLOW__") || key.starts_with("EXECUTION_API_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.env_remove("AIRFLOW_CONFIG").env(
        "AIRFLOW_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-airflow-home"),
    );
    // Most tests call routes with tokens for arbitrary subjects, as Airflow's own route tests
    // do, so they run the server with Airflow's permissive ownership; the tests of ownership
    // itself, the Task SDK interop and the end-to-end run (.ci/e2e) run the strict default,
    // which they ask for by setting EXECUTION_API_OWNERSHIP themselves.
    if !env.iter().any(|(key, _)| *key == "EXECUTION_API_OWNERSHIP") {
        command.env("EXECUTION_API_OWNERSHIP", "permissive");
    }
    command.args(args).envs(env.iter().copied());
    command
}

/// Runs a one-shot CLI command.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    server_command(args, env)
        .stdin(Stdio::null())
        .output()
        .expect("run server binary")
}

/// Runs a CLI command that must succeed; returns its stdout.
pub fn run_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run(args, env);
    assert!(
        output.status.success(),
        "`server {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// A running `server serve`, killed on drop if not stopped.
pub struct ServerProcess {
    child: Option<Child>,
    /// The address it reported.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts `server serve --bind 127.0.0.1:0 <args>` and waits for its `listening on` line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut all = vec!["serve", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = server_command(&all, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn server");

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let sink = Arc::clone(&stderr);
            let pipe = child.stderr.take().expect("stderr piped");
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut sink = sink.lock().unwrap();
                    sink.push_str(&line);
                    sink.push('\n');
                }
            })
        };

        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
                line.strip_prefix("listening on http://")
                    .map(|addr| addr.trim().parse::<SocketAddr>())
            });
            let _ = tx.send(found);
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });

        let mut server = ServerProcess {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        match rx.recv_timeout(STARTUP_LIMIT) {
            Ok(Some(Ok(addr))) => server.addr = addr,
            other => {
                let status = server.kill();
                panic!(
                    "server did not report its address ({other:?}); exit: {status:?}\nstderr:\n{}",
                    server.stderr()
                );
            }
        }
        server
    }

    /// Waits (bounded) until the server's log contains `needle`; stdout and stderr are
    /// read by different threads, so a line logged before `listening on` may still be
    /// in flight when the address is known. The log so far, whether or not found.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + STARTUP_LIMIT;
        loop {
            let log = self.stderr();
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status and full log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = child.wait().expect("wait for server");
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Response {
    /// A header by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`; `token` goes in `Authorization: Bearer`.
/// Panics if the exchange fails (see [`request`] for the fallible form).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    request(addr, method, path, &headers, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Sends raw bytes and reads the whole response (the request must say `Connection: close`).
/// Connection errors and truncated responses are `Err`.
pub fn send_raw(addr: SocketAddr, request: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(STARTUP_LIMIT))?;
    stream.set_write_timeout(Some(STARTUP_LIMIT))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// One request with `Connection: close`; extra headers as given; `body` sent as JSON.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    send_raw(addr, head.as_bytes())
}

fn truncated(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("truncated response: {what}"),
    )
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| truncated("no header block"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| truncated("no status"))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        let mut body = Vec::new();
        loop {
            let eol = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| truncated("chunk size"))?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .map_err(|_| truncated("chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(truncated("chunk"));
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body
    } else {
        if let Some(len) = headers.get("content-length") {
            let len: usize = len.parse().map_err(|_| truncated("content-length"))?;
            if rest.len() < len {
                return Err(truncated("body"));
            }
            rest = &rest[..len];
        }
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Asserts a failed CLI run: non-zero exit, `needle` in stderr, no panic or backtrace.
pub fn assert_clean_failure(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "stderr lacks {needle:?}:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic output:\n{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "stdout should be empty on error: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}
