//! Hostile tokens and headers through real HTTP against the real `server` binary: each is a
//! clear 4xx with a `detail`, nothing panics, the server keeps answering, and nothing the
//! refused requests tried to write (a variable, an XCom, a task instance's state or heartbeat)
//! was written.

mod common;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Response, ServerProcess, TempDir, request, send_raw};
use execution_api_server::store::{TiState, XComKey};
use policy_core::{GeneratorConfig, SigningKey, TokenGenerator, TokenType};
use serde_json::{Value, json};
use support::{b64, call, create_ti, hs256, unix_now};
use uuid::Uuid;

const SECRET: &str = "reliability-hostile-secret-0123456789abcdef0123456789abcdef";
const DAG: &str = "hostile_dag";
const RUN: &str = "manual__reliability";
const RUN_BODY: &str = r#"{"state":"running","hostname":"worker-1","unixname":"airflow","pid":4242,"start_date":"2026-01-01T00:00:00Z"}"#;
const HEARTBEAT_BODY: &str = r#"{"hostname":"worker-1","pid":4242}"#;
const SUCCESS_BODY: &str = r#"{"state":"success","end_date":"2026-01-01T01:00:00Z"}"#;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-core/src/testdata")
        .join(name)
}

/// Claims of a valid execution token for `sub`, as JSON text (so tests can splice it).
fn claims(sub: Uuid) -> Value {
    let now = unix_now();
    json!({"sub": sub.to_string(), "aud": "urn:airflow.apache.org:task", "iat": now,
           "nbf": now, "exp": now + 600, "scope": "execution"})
}

fn header_hs256() -> &'static str {
    r#"{"alg":"HS256","typ":"JWT"}"#
}

/// A valid HS256 token for `sub` signed with the server's secret.
fn good(sub: Uuid) -> String {
    hs256(SECRET.as_bytes(), header_hs256(), &claims(sub).to_string())
}

/// Whether the response is a clear refusal: 4xx with a non-empty `detail`.
fn assert_refused(case: &str, what: &str, reply: &Response) {
    assert!(
        (400..500).contains(&reply.status),
        "{case}: {what}: expected 4xx, got {} {}",
        reply.status,
        reply.body
    );
    let body: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{case}: {what}: body is not JSON ({e}): {:?}", reply.body));
    let detail = &body["detail"];
    let clear = match detail {
        Value::String(s) => !s.is_empty(),
        Value::Null => false,
        _ => true,
    };
    assert!(clear, "{case}: {what}: no detail in {}", reply.body);
}

fn assert_alive(case: &str, addr: SocketAddr) {
    let reply = request(addr, "GET", "/execution/health/ping", &[], None)
        .unwrap_or_else(|e| panic!("{case}: server stopped answering: {e}"));
    assert_eq!(reply.status, 200, "{case}: health after: {}", reply.body);
}

/// Every write the API offers, aimed at `ti` (running) with `authorization` as the header
/// value: each must be refused with `status` and a detail starting with `detail`.
fn attempt_writes(
    addr: SocketAddr,
    ti: Uuid,
    case: &str,
    authorization: &str,
    expect: (u16, &str),
) {
    let writes = [
        (
            "PUT",
            "/execution/variables/guard".to_owned(),
            r#"{"val":"pwned"}"#,
        ),
        (
            "POST",
            format!("/execution/xcoms/{DAG}/{RUN}/t_a/pwned"),
            r#""pwned""#,
        ),
        (
            "PUT",
            format!("/execution/task-instances/{ti}/heartbeat"),
            HEARTBEAT_BODY,
        ),
        (
            "PATCH",
            format!("/execution/task-instances/{ti}/state"),
            SUCCESS_BODY,
        ),
    ];
    for (method, path, body) in writes {
        let what = format!("{method} {path}");
        let reply = request(
            addr,
            method,
            &path,
            &[("Authorization", authorization)],
            Some(body),
        )
        .unwrap_or_else(|e| panic!("{case}: {what}: {e}"));
        assert_refused(case, &what, &reply);
        assert_eq!(reply.status, expect.0, "{case}: {what}: {}", reply.body);
        let detail = serde_json::from_str::<Value>(&reply.body).unwrap()["detail"].clone();
        let detail = detail.as_str().unwrap_or_default();
        assert!(
            detail.starts_with(expect.1),
            "{case}: {what}: detail {detail:?} does not start with {:?}",
            expect.1
        );
    }
    assert_alive(case, addr);
}

const INVALID: (u16, &str) = (403, "Invalid auth token");

/// What the database holds for the things the hostile requests aimed at.
#[derive(Debug, PartialEq)]
struct Snapshot {
    guard: Option<String>,
    pwned_xcom: Option<String>,
    state: Option<TiState>,
    last_heartbeat_at: Option<time::OffsetDateTime>,
    end_date: Option<time::OffsetDateTime>,
    other_state: Option<TiState>,
}

fn snapshot(dir: &Path, ti: Uuid, other: Uuid) -> Snapshot {
    support::runtime().block_on(async {
        let store = support::open_store(dir, None).await;
        let record = store.task_instance(ti).await.unwrap().expect("ti");
        let snapshot = Snapshot {
            guard: store.variable("guard").await.unwrap().map(|v| v.value),
            pwned_xcom: store
                .xcom(XComKey {
                    dag_id: DAG,
                    run_id: RUN,
                    task_id: "t_a",
                    key: "pwned",
                    map_index: -1,
                })
                .await
                .unwrap(),
            state: record.state,
            last_heartbeat_at: record.last_heartbeat_at,
            end_date: record.end_date,
            other_state: store.task_instance(other).await.unwrap().unwrap().state,
        };
        store.close().await;
        snapshot
    })
}

fn no_panics(server: ServerProcess) {
    let (status, log) = server.terminate();
    assert!(!log.contains("panicked"), "server panicked:\n{log}");
    assert!(status.success(), "server exit {status:?}:\n{log}");
}

#[test]
fn hostile_tokens_and_headers_on_a_shared_secret_server() {
    let dir = TempDir::new("reliability-hostile");
    let ti = create_ti(dir.path(), None, DAG, "t_a");
    let other = create_ti(dir.path(), None, DAG, "t_b");
    let env = [
        ("AIRFLOW__API_AUTH__JWT_SECRET", SECRET),
        ("AIRFLOW__API_AUTH__JWT_ALGORITHM", "HS256"),
    ];
    let server = ServerProcess::start(&["--data-dir", dir.path().to_str().unwrap()], &env);
    let addr = server.addr;

    // The hand-made signer is right: its token starts the task instance, and sets the
    // variable and heartbeat the hostile requests will try to change.
    let token = good(ti);
    let reply = call(
        addr,
        "PATCH",
        &format!("/execution/task-instances/{ti}/run"),
        &token,
        Some(RUN_BODY),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = call(
        addr,
        "PUT",
        "/execution/variables/guard",
        &token,
        Some(r#"{"val":"original"}"#),
    )
    .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = call(
        addr,
        "PUT",
        &format!("/execution/task-instances/{ti}/heartbeat"),
        &token,
        Some(HEARTBEAT_BODY),
    )
    .unwrap();
    assert_eq!(reply.status, 204, "{}", reply.body);
    let before = snapshot(dir.path(), ti, other);
    assert_eq!(before.guard.as_deref(), Some("original"));
    assert_eq!(before.state, Some(TiState::Running));
    assert!(before.last_heartbeat_at.is_some());

    let now = unix_now();
    let payload = claims(ti).to_string();
    let sign = |header: &str, payload: &str| hs256(SECRET.as_bytes(), header, payload);
    // Splices raw JSON values in, replacing those claims.
    let with_claims = |raw: &[(&str, &str)]| {
        let mut map = claims(ti);
        let mut spliced = String::from("{");
        for (name, value) in raw {
            map.as_object_mut().unwrap().remove(*name);
            spliced.push_str(&format!("\"{name}\":{value},"));
        }
        format!("{spliced}{}", &map.to_string()[1..])
    };
    let with_claim = |name: &str, raw: &str| with_claims(&[(name, raw)]);
    let long_kid = "k".repeat(10 * 1024);
    let inner_jwt = good(ti);
    let mut tokens: Vec<(String, String)> = vec![
        // alg none, in every spelling, with and without a signature.
        (
            "alg none".into(),
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(payload.as_bytes())
            ),
        ),
        (
            "alg None".into(),
            format!("{}.{}.", b64(br#"{"alg":"None"}"#), b64(payload.as_bytes())),
        ),
        (
            "alg NONE, signed".into(),
            sign(r#"{"alg":"NONE"}"#, &payload),
        ),
        (
            "alg none, HMAC signature".into(),
            sign(r#"{"alg":"none"}"#, &payload),
        ),
        ("no alg".into(), sign(r#"{"typ":"JWT"}"#, &payload)),
        (
            "alg HS512 with an HS256 signature".into(),
            sign(r#"{"alg":"HS512"}"#, &payload),
        ),
        (
            "alg RS256 with an HMAC signature".into(),
            sign(r#"{"alg":"RS256"}"#, &payload),
        ),
        // kid as a path, huge, or not a string, with a signature by another secret.
        (
            "kid ../../etc/passwd, other secret".into(),
            hs256(
                b"not-the-secret",
                r#"{"alg":"HS256","kid":"../../etc/passwd"}"#,
                &payload,
            ),
        ),
        (
            "kid /dev/zero, other secret".into(),
            hs256(
                b"not-the-secret",
                r#"{"alg":"HS256","kid":"/dev/zero"}"#,
                &payload,
            ),
        ),
        (
            "kid 10 KB".into(),
            sign(
                &format!(r#"{{"alg":"HS256","kid":"{long_kid}"}}"#),
                &payload,
            ),
        ),
        (
            "kid an object".into(),
            sign(r#"{"alg":"HS256","kid":{"path":"/etc/passwd"}}"#, &payload),
        ),
        // crit extensions, even validly signed.
        (
            "crit [exp]".into(),
            sign(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, &payload),
        ),
        (
            "crit [] ".into(),
            sign(r#"{"alg":"HS256","crit":[]}"#, &payload),
        ),
        (
            "crit unknown".into(),
            sign(
                r#"{"alg":"HS256","crit":["x-custom"],"x-custom":true}"#,
                &payload,
            ),
        ),
        // Nested JWT (the payload is a JWT, not claims) and JWE-shaped tokens.
        (
            "nested JWT, cty JWT".into(),
            sign(r#"{"alg":"HS256","cty":"JWT"}"#, &inner_jwt),
        ),
        (
            "nested JWT, JSON string payload".into(),
            sign(header_hs256(), &json!(inner_jwt).to_string()),
        ),
        (
            "JWE compact, 5 segments".into(),
            format!(
                "{}.{}.{}.{}.{}",
                b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
                b64(b"encrypted-key"),
                b64(b"iv-iv-iv-iv"),
                b64(payload.as_bytes()),
                b64(b"tag")
            ),
        ),
        (
            "JWE dir, 5 segments, valid JWT inside".into(),
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"dir","enc":"A128GCM"}"#),
                inner_jwt,
                "x"
            ),
        ),
        ("4 segments".into(), format!("{inner_jwt}.extra")),
        (
            "2 segments".into(),
            inner_jwt.rsplit_once('.').unwrap().0.to_owned(),
        ),
        ("padding in segments".into(), inner_jwt.replace('.', "=.")),
        ("payload not JSON".into(), sign(header_hs256(), "not json")),
        (
            "payload an array".into(),
            sign(header_hs256(), &format!("[{payload}]")),
        ),
        // Duplicate keys: a duplicated `alg` whose last value is `none`.
        (
            "duplicate alg, last none".into(),
            sign(r#"{"alg":"HS256","alg":"none"}"#, &payload),
        ),
        // Time claims of the wrong type or out of range, validly signed.
        (
            "exp a string".into(),
            sign(
                header_hs256(),
                &with_claim("exp", &format!("\"{}\"", now + 600)),
            ),
        ),
        (
            "exp a float in the past".into(),
            sign(
                header_hs256(),
                &with_claim("exp", &format!("{}.5", now - 3600)),
            ),
        ),
        (
            "exp 1e300".into(),
            sign(header_hs256(), &with_claim("exp", "1e300")),
        ),
        (
            "exp beyond u64".into(),
            sign(header_hs256(), &with_claim("exp", "184467440737095516160")),
        ),
        (
            "exp negative huge".into(),
            sign(header_hs256(), &with_claim("exp", &i64::MIN.to_string())),
        ),
        (
            "exp null".into(),
            sign(header_hs256(), &with_claim("exp", "null")),
        ),
        (
            "exp an array".into(),
            sign(
                header_hs256(),
                &with_claim("exp", &format!("[{}]", now + 600)),
            ),
        ),
        (
            "nbf far future".into(),
            sign(header_hs256(), &with_claim("nbf", &i64::MAX.to_string())),
        ),
        (
            "iat far future".into(),
            sign(header_hs256(), &with_claim("iat", "9e14")),
        ),
        (
            "sub not a UUID".into(),
            sign(header_hs256(), &with_claim("sub", r#""../../etc/passwd""#)),
        ),
        (
            "sub an integer".into(),
            sign(header_hs256(), &with_claim("sub", "1")),
        ),
        (
            "scope admin".into(),
            sign(header_hs256(), &with_claim("scope", r#""admin""#)),
        ),
        (
            "aud other".into(),
            sign(header_hs256(), &with_claim("aud", r#""urn:someone:else""#)),
        ),
        // Signature tampering.
        (
            "signature of another secret".into(),
            hs256(b"guess", header_hs256(), &payload),
        ),
        (
            "signature stripped".into(),
            format!("{}.", inner_jwt.rsplit_once('.').unwrap().0),
        ),
        ("payload swapped after signing".into(), {
            let mut parts: Vec<String> = inner_jwt.split('.').map(str::to_owned).collect();
            parts[1] = b64(claims(other).to_string().as_bytes());
            parts.join(".")
        }),
        (
            "token 9 KB".into(),
            format!("{inner_jwt}{}", "A".repeat(9 * 1024)),
        ),
    ];
    // A workload token on routes that only take execution tokens is a 403 of its own kind,
    // checked below; here, everything is "Invalid auth token".
    for (case, token) in tokens.drain(..) {
        attempt_writes(addr, ti, &case, &format!("Bearer {token}"), INVALID);
    }

    // Duplicate claims are read as the lexically last (RFC 7519 section 4): `sub` of the
    // task instance first, of another last, is the other one, so the ti:self routes refuse.
    let ti_s = ti.to_string();
    let other_s = other.to_string();
    let dup = sign(
        header_hs256(),
        &with_claim("sub", &format!("\"{ti_s}\",\"sub\":\"{other_s}\"")),
    );
    for (method, path, body) in [
        (
            "PUT",
            format!("/execution/task-instances/{ti}/heartbeat"),
            HEARTBEAT_BODY,
        ),
        (
            "PATCH",
            format!("/execution/task-instances/{ti}/state"),
            SUCCESS_BODY,
        ),
    ] {
        let reply = call(addr, method, &path, &dup, Some(body)).unwrap();
        assert_eq!(reply.status, 403, "duplicate sub: {path}: {}", reply.body);
        assert_eq!(
            reply.json()["detail"],
            "Token subject does not match task instance ID"
        );
    }

    // `sub` of another task instance, and a workload token, on this one's routes.
    let someone_else = good(other);
    let workload = sign(header_hs256(), &with_claim("scope", r#""workload""#));
    for (case, token, detail) in [
        (
            "sub of another task instance",
            &someone_else,
            "Token subject does not match task instance ID",
        ),
        (
            "workload token",
            &workload,
            "Token type 'workload' not allowed for this endpoint",
        ),
    ] {
        for (method, path, body) in [
            (
                "PUT",
                format!("/execution/task-instances/{ti}/heartbeat"),
                HEARTBEAT_BODY,
            ),
            (
                "PATCH",
                format!("/execution/task-instances/{ti}/state"),
                SUCCESS_BODY,
            ),
        ] {
            let reply = call(addr, method, &path, token, Some(body)).unwrap();
            assert_refused(case, &path, &reply);
            assert_eq!(reply.status, 403, "{case}: {path}");
            let got = reply.json()["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(got.starts_with(detail), "{case}: {got}");
        }
    }

    // Tokens the issuer really signed with odd but valid time claims are read without
    // overflow or panic: accepted on a read-only route.
    for (case, token) in [
        (
            "exp i64::MAX, iat i64::MIN",
            sign(
                header_hs256(),
                &with_claims(&[
                    ("exp", &i64::MAX.to_string()),
                    ("iat", &i64::MIN.to_string()),
                ]),
            ),
        ),
        (
            "exp a float in the future",
            sign(
                header_hs256(),
                &with_claim("exp", &format!("{}.75", now + 600)),
            ),
        ),
    ] {
        let reply = call(addr, "GET", "/execution/variables/guard", &token, None).unwrap();
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
    }

    // RFC 6750 allows several spaces after `Bearer`, and Airflow accepts them.
    let spaced = format!("Bearer   {}", good(ti));
    let reply = request(
        addr,
        "GET",
        "/execution/variables/guard",
        &[("Authorization", &spaced)],
        None,
    )
    .unwrap();
    assert_eq!(reply.status, 200, "spaces before the token: {}", reply.body);

    // Malformed Authorization headers.
    let huge = format!("Bearer {}", "A".repeat(100 * 1024));
    for (case, value, expect) in [
        (
            "scheme Basic",
            format!("Basic {}", b64(b"admin:admin")),
            (401, "Missing auth token"),
        ),
        (
            "Bearer without token",
            "Bearer".to_owned(),
            (401, "Missing auth token"),
        ),
        (
            "Bearer and spaces",
            "Bearer    ".to_owned(),
            (401, "Missing auth token"),
        ),
        (
            "two tokens",
            format!("Bearer {} {}", good(ti), good(ti)),
            (403, "Invalid auth token"),
        ),
        (
            "token 20 KB",
            format!("Bearer {}", "A".repeat(20 * 1024)),
            (403, "Invalid auth token"),
        ),
    ] {
        attempt_writes(addr, ti, case, &value, expect);
    }

    // 100 KB and non-UTF-8 headers, sent as raw bytes.
    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        ("Authorization 100 KB", huge.into_bytes()),
        ("Authorization non-UTF-8", {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(&[0xff, 0xfe, 0x80, b'.', 0xc3, 0x28, b'.', 0xed, 0xa0, 0x80]);
            v
        }),
        ("actix: Authorization with a NUL byte", {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(good(ti).as_bytes());
            v.extend_from_slice(b"\0x");
            v
        }),
        (
            "actix: Authorization 1 MB",
            format!("Bearer {}", "A".repeat(1024 * 1024)).into_bytes(),
        ),
        ("Authorization Latin-1 around a valid token", {
            let mut v = b"Bearer ".to_vec();
            v.extend_from_slice(good(ti).as_bytes());
            v.push(0xe9);
            v
        }),
    ];
    for (case, value) in raw_cases {
        for (method, path, body) in [
            (
                "PUT",
                "/execution/variables/guard".to_owned(),
                r#"{"val":"pwned"}"#,
            ),
            (
                "PATCH",
                format!("/execution/task-instances/{ti}/state"),
                SUCCESS_BODY,
            ),
        ] {
            let mut req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nAuthorization: ",
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n\r\n");
            req.extend_from_slice(body.as_bytes());
            let reply = match send_raw(addr, &req) {
                Ok(reply) => reply,
                // actix answers 431 and closes while a 1 MB header is still being sent.
                Err(e)
                    if case.starts_with("actix:")
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ) =>
                {
                    eprintln!("{case}: connection closed by the server ({e})");
                    continue;
                }
                Err(e) => panic!("{case}: {e}"),
            };
            assert!(
                (400..500).contains(&reply.status),
                "{case}: {method} {path}: {} {}",
                reply.status,
                reply.body
            );
            if case.starts_with("actix:") {
                // Refused by actix's HTTP/1 parser before any handler runs: a 4xx with an
                // empty body (the app never sees the request).
                eprintln!("{case}: {} {:?}", reply.status, reply.body);
            } else {
                assert_refused(case, &path, &reply);
                assert_eq!(reply.status, 403, "{case}: {}", reply.body);
            }
        }
        assert_alive(case, addr);
    }
    // Other headers with non-UTF-8 bytes, beside a valid token: the request is served, and
    // the echoed header does not break the response.
    let mut req = format!(
        "GET /execution/variables/guard HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\ncorrelation-id: ",
        good(ti)
    )
    .into_bytes();
    req.extend_from_slice(&[0xff, 0xfe, b'x', 0x80]);
    req.extend_from_slice(b"\r\nairflow-api-version: \xc3\x28\r\n\r\n");
    let reply = send_raw(addr, &req).unwrap();
    // A version header that is no date is Airflow's 422 on that header; the echoed
    // correlation-id does not break the response.
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        reply.json()["detail"][0]["loc"],
        serde_json::json!(["header", "Airflow-API-Version"])
    );
    assert_alive("non-UTF-8 correlation-id", addr);

    // Nothing was written.
    let after = snapshot(dir.path(), ti, other);
    assert_eq!(after, before);
    assert_eq!(after.pwned_xcom, None);
    assert_eq!(after.other_state, Some(TiState::Queued));
    no_panics(server);
}

/// A server signing with `private` (RS256 or EdDSA): HS256 tokens keyed with the public key,
/// `alg: none` and foreign keys under its `kid` are refused.
fn asymmetric_server(private: &str, public: &str, foreign: &str) {
    let dir = TempDir::new("reliability-hostile-asym");
    let ti = create_ti(dir.path(), None, DAG, "t_a");
    let other = create_ti(dir.path(), None, DAG, "t_b");
    let key_path = testdata(private);
    let server = ServerProcess::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[(
            "AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH",
            key_path.to_str().unwrap(),
        )],
    );
    let addr = server.addr;
    let key = SigningKey::from_pem(std::fs::read(&key_path).unwrap()).unwrap();
    let kid = key.kid().expect("asymmetric keys have a kid").to_owned();
    let generator = TokenGenerator::new(key.clone(), GeneratorConfig::default());
    let token = generator
        .generate(ti, TokenType::Execution, Duration::from_secs(600))
        .unwrap();
    let reply = call(
        addr,
        "PATCH",
        &format!("/execution/task-instances/{ti}/run"),
        &token,
        Some(RUN_BODY),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = call(
        addr,
        "PUT",
        "/execution/variables/guard",
        &token,
        Some(r#"{"val":"original"}"#),
    )
    .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let before = snapshot(dir.path(), ti, other);

    let public_pem = std::fs::read(testdata(public)).unwrap();
    let payload = claims(ti).to_string();
    let confusion_header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
    let foreign_key = SigningKey::from_pem(std::fs::read(testdata(foreign)).unwrap()).unwrap();
    let foreign_alg = format!("{:?}", foreign_key.algorithm());
    let cases = [
        (
            "HS256 keyed with the public PEM",
            hs256(&public_pem, &confusion_header, &payload),
        ),
        (
            "HS256 keyed with the public PEM, no kid",
            hs256(&public_pem, header_hs256(), &payload),
        ),
        (
            "HS256 keyed with the trimmed public PEM",
            hs256(
                String::from_utf8_lossy(&public_pem).trim().as_bytes(),
                &confusion_header,
                &payload,
            ),
        ),
        (
            "HS512-named, HS256 keyed with the public PEM",
            hs256(
                &public_pem,
                &format!(r#"{{"alg":"HS512","kid":"{kid}"}}"#),
                &payload,
            ),
        ),
        (
            "alg none under the server's kid",
            format!(
                "{}.{}.",
                b64(format!(r#"{{"alg":"none","kid":"{kid}"}}"#).as_bytes()),
                b64(payload.as_bytes())
            ),
        ),
        (
            "another key under the server's kid",
            TokenGenerator::new(
                foreign_key.clone().with_kid(Some(kid.clone())),
                GeneratorConfig::default(),
            )
            .generate(ti, TokenType::Execution, Duration::from_secs(600))
            .unwrap(),
        ),
        (
            "the real key, kid ../../etc/passwd",
            TokenGenerator::new(
                key.clone().with_kid(Some("../../etc/passwd".into())),
                GeneratorConfig::default(),
            )
            .generate(ti, TokenType::Execution, Duration::from_secs(600))
            .unwrap(),
        ),
        (
            "the real key, kid 10 KB",
            TokenGenerator::new(
                key.clone().with_kid(Some("k".repeat(10 * 1024))),
                GeneratorConfig::default(),
            )
            .generate(ti, TokenType::Execution, Duration::from_secs(600))
            .unwrap(),
        ),
    ];
    for (case, token) in cases {
        attempt_writes(
            addr,
            ti,
            &format!("{private}: {case} ({foreign_alg} foreign)"),
            &format!("Bearer {token}"),
            INVALID,
        );
    }
    assert_eq!(snapshot(dir.path(), ti, other), before);
    assert_eq!(before.guard.as_deref(), Some("original"));
    no_panics(server);
}

#[test]
fn algorithm_confusion_against_an_rsa_server() {
    asymmetric_server("rsa_private.pem", "rsa_public.pem", "rsa2_private.pem");
}

#[test]
fn algorithm_confusion_against_an_ed25519_server() {
    asymmetric_server(
        "ed25519_private.pem",
        "ed25519_public.pem",
        "p256_private.pem",
    );
}
