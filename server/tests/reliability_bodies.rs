//! Request bodies against the real `server` binary over real HTTP: a client that sends the
//! headers of a chunked request and then a trickle (or nothing) cannot hold connections or make
//! the server drain forever; a stalled body times out; an over-limit body gets a JSON 413; and
//! none of these changes anything.

mod common;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{ServerProcess, TempDir};
use serde_json::Value;
use support::{call, cli};
use uuid::Uuid;

/// Half-sent requests held at once.
const HELD: usize = 200;
/// Bound on every wait of this test (not a timing assertion).
const LIMIT: Duration = Duration::from_secs(30);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
}

/// Reads up to the end of a response head and whatever body came with it.
fn read_head(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("a response");
        assert!(n > 0, "closed before answering");
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, text)
}

fn detail_of(text: &str) -> Value {
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{e}: {text}"))["detail"].clone()
}

/// Whether the server has closed `stream` (EOF or reset), without waiting more than `wait`.
fn closed(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn bodies_are_bounded_and_early_answers_close_the_connection() {
    let dir = TempDir::new("reliability-bodies");
    cli(dir.path(), None, &["variable", "set", "guard", "kept"], &[]);
    let token = cli(
        dir.path(),
        None,
        &[
            "token",
            "mint",
            "--sub",
            &Uuid::new_v4().to_string(),
            "--scope",
            "execution",
        ],
        &[],
    );
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let addr = server.addr;

    // 1. Many chunked requests without a token, the headers and one chunk sent, the rest never.
    let head = format!(
        "POST /execution/xcoms/d/r/t/k HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\"abc\"\r\n"
    );
    let mut held: Vec<TcpStream> = (0..HELD)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    for stream in &mut held {
        let (status, text) = read_head(stream);
        assert_eq!(status, 401, "{text}");
        assert_eq!(detail_of(&text), "Missing auth token", "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "an early answer closes the connection: {text}"
        );
    }
    // A normal client is answered at once while they are held.
    let reply = call(addr, "GET", "/execution/variables/guard", &token, None).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["value"], "kept");
    // The server closes every held connection, though the clients keep trickling their bodies.
    let started = Instant::now();
    let mut open: Vec<TcpStream> = held;
    while !open.is_empty() {
        assert!(
            started.elapsed() < LIMIT,
            "{} of {HELD} half-sent requests still open after {LIMIT:?}",
            open.len()
        );
        open.retain_mut(|stream| {
            let _ = stream.write_all(b"1\r\nx\r\n");
            !closed(stream, Duration::from_millis(10))
        });
    }
    eprintln!(
        "bodies: {HELD} early-answered connections closed within {:?}",
        started.elapsed()
    );

    // 2. An authenticated body that stalls times out: 408 with a JSON detail.
    let mut stalled = connect(addr);
    write!(
        stalled,
        "PUT /execution/variables/guard HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{{\"va\r\n"
    )
    .unwrap();
    let (status, text) = read_head(&mut stalled);
    assert_eq!(status, 408, "{text}");
    assert_eq!(detail_of(&text), "Request body timed out", "{text}");
    assert!(
        closed(&mut stalled, LIMIT),
        "a timed-out body's connection closes"
    );

    // 3. A declared length over the limit: 413 with a JSON detail, at once.
    let mut declared = connect(addr);
    write!(
        declared,
        "PUT /execution/variables/guard HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"value\":\"",
        execution_api_server::app::BODY_LIMIT + 1
    )
    .unwrap();
    let (status, text) = read_head(&mut declared);
    assert_eq!(status, 413, "{text}");
    assert!(
        detail_of(&text)
            .as_str()
            .is_some_and(|d| d.starts_with("Request body is larger than")),
        "{text}"
    );

    // 4. A chunked body that grows past the limit: 413 with a JSON detail.
    let mut growing = connect(addr);
    write!(
        growing,
        "PUT /execution/variables/guard HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let mut writer = growing.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let mut sent = 0;
        let _ = writer.write_all(b"A\r\n{\"value\":\"\r\n");
        while sent <= execution_api_server::app::BODY_LIMIT + (1 << 20) {
            if writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| writer.write_all(&chunk))
                .and_then(|()| writer.write_all(b"\r\n"))
                .is_err()
            {
                break;
            }
            sent += chunk.len();
        }
    });
    let (status, text) = read_head(&mut growing);
    assert_eq!(status, 413, "{text}");
    assert!(
        closed(&mut growing, LIMIT),
        "an over-limit body's connection closes"
    );
    feeder.join().unwrap();

    // Nothing was written.
    let reply = call(addr, "GET", "/execution/variables/guard", &token, None).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["value"], "kept");

    let (exit, log) = server.terminate();
    assert!(!log.contains("panicked"), "server panicked:\n{log}");
    assert!(exit.success(), "{exit:?}:\n{log}");
}
