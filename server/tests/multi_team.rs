//! `[core] multi_team` over real HTTP against the binary: a task reaches the XComs of its own
//! team's DAGs, reads (but does not write) those of teamless DAGs, and gets Airflow's 403
//! `access_denied` for another team's, with nothing written.

mod common;
mod support;

use common::{ServerProcess, TempDir};
use support::{call, cli, connect, create_ti, runtime, sqlite_url};

#[test]
fn xcoms_stay_within_a_team() {
    let dir = TempDir::new("multi-team");
    let in_a = create_ti(dir.path(), None, "dag_a", "t");
    let in_b = create_ti(dir.path(), None, "dag_b", "t");
    create_ti(dir.path(), None, "dag_free", "t");
    runtime().block_on(async {
        let mut conn = connect(&sqlite_url(dir.path())).await;
        for statement in [
            "INSERT INTO team (name) VALUES ('team_a'), ('team_b')",
            "INSERT INTO dag_bundle (name, active) VALUES ('bundle_a', 1), ('bundle_b', 1), ('bundle_free', 1)",
            "UPDATE dag SET bundle_name = 'bundle_a' WHERE dag_id = 'dag_a'",
            "UPDATE dag SET bundle_name = 'bundle_b' WHERE dag_id = 'dag_b'",
            "UPDATE dag SET bundle_name = 'bundle_free' WHERE dag_id = 'dag_free'",
            "INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ('bundle_a', 'team_a'), ('bundle_b', 'team_b')",
        ] {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    });
    let token_a = cli(
        dir.path(),
        None,
        &[
            "token",
            "mint",
            "--sub",
            &in_a.to_string(),
            "--scope",
            "execution",
        ],
        &[],
    );
    let token_b = cli(
        dir.path(),
        None,
        &[
            "token",
            "mint",
            "--sub",
            &in_b.to_string(),
            "--scope",
            "execution",
        ],
        &[],
    );
    let server = ServerProcess::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[("AIRFLOW__CORE__MULTI_TEAM", "True")],
    );
    let addr = server.addr;
    let xcom = |dag: &str| format!("/execution/xcoms/{dag}/manual__reliability/t/k");

    // Its own team's DAG: write and read.
    let reply = call(addr, "POST", &xcom("dag_a"), &token_a, Some("1")).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        call(addr, "GET", &xcom("dag_a"), &token_a, None)
            .unwrap()
            .status,
        200
    );

    // Another team's: 403 for reads and writes, and the value stays.
    // (HEAD has the same check; this client cannot read a bodiless answer with a length.)
    for (method, body) in [("GET", None), ("POST", Some("2")), ("DELETE", None)] {
        let reply = call(addr, method, &xcom("dag_a"), &token_b, body).unwrap();
        assert_eq!(reply.status, 403, "{method}: {}", reply.body);
        assert_eq!(
            reply.json()["detail"],
            serde_json::json!({
                "reason": "access_denied",
                "message": "Task does not have access to this XCom in multi-team mode",
            })
        );
    }
    let reply = call(addr, "GET", &xcom("dag_a"), &token_a, None).unwrap();
    assert_eq!(reply.json()["value"], 1, "{}", reply.body);

    // A teamless DAG: a team's task reads it but does not write it.
    let reply = call(addr, "POST", &xcom("dag_free"), &token_b, Some("3")).unwrap();
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = call(addr, "GET", &xcom("dag_free"), &token_b, None).unwrap();
    assert_eq!(
        reply.status, 404,
        "read allowed, nothing there: {}",
        reply.body
    );
}
