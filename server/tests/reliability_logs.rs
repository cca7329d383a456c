//! The log over real HTTP against the binary: what a caller sends cannot forge log lines (a
//! token header's `kid` and `alg` with newlines and terminal escapes come out escaped), and
//! malformed requests, which actix-http logs at ERROR, cannot flood it (one line per 10 s).

mod common;
mod support;

use common::{ServerProcess, TempDir, send_raw};
use support::{b64, call, hs256};

#[test]
fn request_text_cannot_forge_log_lines() {
    let dir = TempDir::new("reliability-logs-forge");
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let forged = "FORGED_LINE level=ERROR";
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"k\n{forged}\u001b[31m\r"}}"#);
    let payload = r#"{"sub":"00000000-0000-0000-0000-000000000001","exp":4102444800,"iat":1,"nbf":1,"aud":"urn:airflow.apache.org:task"}"#;
    let token = hs256(b"not-the-server-secret", &header, payload);
    let reply = call(server.addr, "GET", "/execution/variables/x", &token, None).unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    // A bad `alg` as well, unsigned.
    let weird = format!(
        "{}.{}.",
        b64(format!(r#"{{"alg":"HS256\n{forged}\u001b[0m"}}"#).as_bytes()),
        b64(payload.as_bytes())
    );
    let reply = call(server.addr, "GET", "/execution/variables/x", &weird, None).unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);

    server.wait_log("status=403");
    let (_, log) = server.terminate();
    assert!(log.contains("status=403"), "{log}");
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED_LINE"),
            "a request forged a log line:\n{log}"
        );
    }
    assert!(
        !log.contains('\u{1b}'),
        "a terminal escape reached the log:\n{log:?}"
    );
    assert!(
        !log.contains('\r'),
        "a carriage return reached the log:\n{log:?}"
    );
}

#[test]
fn malformed_requests_cannot_flood_the_log() {
    let dir = TempDir::new("reliability-logs-flood");
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    for _ in 0..50 {
        let reply = send_raw(
            server.addr,
            b"GET /execution/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.status, 400);
    }
    // A well-formed request afterwards, so every malformed one has been handled and logged.
    let reply = send_raw(
        server.addr,
        b"GET /execution/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    let (_, log) = server.terminate();
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert!(
        (1..=2).contains(&errors),
        "50 malformed requests within seconds wrote {errors} ERROR lines:\n{log}"
    );
}
