//! Keys in paths and queries over real HTTP against the binary: bytes that do not decode to
//! UTF-8 (`%FF`, `%FE`, the overlong `%C0%AF`), which a lossy decoder would all turn into one
//! U+FFFD key, and NUL, are refused with 400 and write nothing.

mod common;
mod support;

use common::{ServerProcess, TempDir};
use support::{call, cli};
use uuid::Uuid;

#[test]
fn undecodable_keys_are_refused_and_change_nothing() {
    let dir = TempDir::new("reliability-keys");
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
    let body = Some(r#"{"val": "written"}"#);

    for key in ["%FF", "%FE", "%C0%AF", "a%00b"] {
        let path = format!("/execution/variables/{key}");
        let reply = call(addr, "PUT", &path, &token, body).unwrap();
        assert_eq!(reply.status, 400, "PUT {path}: {}", reply.body);
        assert!(reply.json()["detail"].is_string(), "{}", reply.body);
        let reply = call(addr, "GET", &path, &token, None).unwrap();
        assert_eq!(reply.status, 400, "GET {path}: {}", reply.body);
    }
    let reply = call(
        addr,
        "GET",
        "/execution/xcoms/d/r/t/k?map_index=%FF",
        &token,
        None,
    )
    .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);

    // What the lossy decoding would have written: U+FFFD, and the NUL-free neighbours.
    for key in ["%EF%BF%BD", "ab", "a"] {
        let reply = call(
            addr,
            "GET",
            &format!("/execution/variables/{key}"),
            &token,
            None,
        )
        .unwrap();
        assert_eq!(reply.status, 404, "{key}: {}", reply.body);
    }
    // A clean non-ASCII key still works.
    let reply = call(addr, "PUT", "/execution/variables/caf%C3%A9", &token, body).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = call(addr, "GET", "/execution/variables/caf%C3%A9", &token, None).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["key"], "café");
}
