use super::*;
use crate::store::testing::stores;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::new_v4().simple())
}

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

fn running(host: &str, pid: i64) -> StartRequest {
    StartRequest {
        hostname: host.into(),
        unixname: "airflow".into(),
        pid,
        start_date: at("2024-05-01T10:00:00Z"),
    }
}

fn terminal(state: TerminalState, rendered: Option<Option<&str>>) -> StateChange {
    StateChange::Terminal {
        state,
        end_date: at("2024-05-01T11:00:00Z"),
        rendered_map_index: rendered.map(|r| r.map(str::to_owned)),
    }
}

fn beat(host: &str, pid: i64) -> crate::store::heartbeats::Beat {
    crate::store::heartbeats::Beat {
        hostname: host.into(),
        pid,
    }
}

async fn count(store: &Store, sql_text: &'static str, bind: &str) -> i64 {
    sqlx::query(sql_text)
        .bind(bind.to_owned())
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

#[tokio::test]
async fn lifecycle() {
    for store in stores("lifecycle").await {
        let dag = unique("dag");
        let mut new = NewTaskInstance::new(&dag, "extract");
        new.max_tries = 2;
        let id = store.create_task_instance(&new).await.unwrap();
        let ti = store.task_instance(id).await.unwrap().unwrap();
        assert_eq!(ti.state, Some(TiState::Queued));
        assert!(ti.run_id.starts_with("manual__"), "{}", ti.run_id);
        // Same identity twice is refused.
        let dup = NewTaskInstance {
            run_id: Some(ti.run_id.clone()),
            ..new.clone()
        };
        assert!(matches!(
            store.create_task_instance(&dup).await,
            Err(StoreError::AlreadyExists(_))
        ));

        let StartOutcome::Started(ctx) = store
            .start_task_instance(id, &running("h1", 7))
            .await
            .unwrap()
        else {
            panic!("not started")
        };
        assert_eq!(ctx.max_tries, 2);
        assert!(ctx.should_retry);
        assert_eq!(ctx.dag_run.dag_id, dag);
        // The task instance's identity (for the ownership checks' memory).
        assert_eq!(ctx.dag_run.run_id, ti.run_id);
        assert_eq!((ctx.task_id.as_str(), ctx.map_index), ("extract", -1));
        // As in Airflow, /run leaves the DAG run to the scheduler.
        assert_eq!(ctx.dag_run.state.as_deref(), Some("queued"));
        assert_eq!(ctx.dag_run.run_type, "manual");
        assert_eq!(ctx.dag_run.conf.as_deref(), Some("{}"));
        assert_eq!(ctx.resume, None);
        // One `log` row with Airflow's event and extra.
        let extra: String = sqlx::query(sql!(
            store.backend,
            "SELECT extra FROM log WHERE dag_id = $1 AND event = 'running'"
        ))
        .bind(&dag)
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        assert_eq!(extra, r#"{"host_name": "h1"}"#);
        // The same worker retrying gets the context again (no second log row);
        // another gets 409.
        assert!(matches!(
            store
                .start_task_instance(id, &running("h1", 7))
                .await
                .unwrap(),
            StartOutcome::Started(_)
        ));
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM log WHERE dag_id = $1", &dag).await,
            1
        );
        assert_eq!(
            store
                .start_task_instance(id, &running("h2", 7))
                .await
                .unwrap(),
            StartOutcome::InvalidState {
                previous_state: Some(TiState::Running)
            }
        );

        assert_eq!(
            store.heartbeat(id, &beat("h1", 7)).await.unwrap(),
            HeartbeatOutcome::Alive
        );
        assert_eq!(
            store.heartbeat(id, &beat("h1", 8)).await.unwrap(),
            HeartbeatOutcome::RunningElsewhere {
                hostname: Some("h1".into()),
                pid: Some(7)
            }
        );

        let success = terminal(TerminalState::Success, Some(Some("a")));
        assert_eq!(
            store
                .update_task_instance_state(id, &success)
                .await
                .unwrap(),
            StateOutcome::Updated
        );
        assert_eq!(
            store
                .update_task_instance_state(id, &success)
                .await
                .unwrap(),
            StateOutcome::AlreadyInState
        );
        assert_eq!(
            store
                .update_task_instance_state(id, &terminal(TerminalState::Failed, None))
                .await
                .unwrap(),
            StateOutcome::NotRunning {
                previous_state: Some(TiState::Success)
            }
        );
        assert_eq!(
            store.heartbeat(id, &beat("h1", 7)).await.unwrap(),
            HeartbeatOutcome::NotRunning {
                state: Some(TiState::Success)
            }
        );
        let ti = store.task_instance(id).await.unwrap().unwrap();
        assert_eq!(ti.state, Some(TiState::Success));
        assert_eq!(ti.end_date, Some(at("2024-05-01T11:00:00Z")));
        assert_eq!(ti.start_date, Some(at("2024-05-01T10:00:00Z")));
        assert_eq!(ti.duration, Some(3600.0));
        assert_eq!(ti.rendered_map_index.as_deref(), Some("a"));
        assert_eq!(
            store
                .start_task_instance(id, &running("h1", 7))
                .await
                .unwrap(),
            StartOutcome::InvalidState {
                previous_state: Some(TiState::Success)
            }
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM log WHERE dag_id = $1 AND event = 'success'",
                &dag
            )
            .await,
            1
        );
    }
}

#[tokio::test]
async fn rendered_map_index_absent_keeps_and_null_clears() {
    for store in stores("rendered_map_index_absent_keeps_and_null_clears").await {
        let dag = unique("dag");
        let (a, b) = (
            store
                .create_task_instance(&NewTaskInstance::new(&dag, "a"))
                .await
                .unwrap(),
            store
                .create_task_instance(&NewTaskInstance::new(&dag, "b"))
                .await
                .unwrap(),
        );
        for id in [a, b] {
            sqlx::query(sql!(
                store.backend,
                "UPDATE task_instance SET rendered_map_index = 'before' WHERE id = $1::uuid"
            ))
            .bind(uuid_param(id))
            .execute(&store.pool)
            .await
            .unwrap();
            store
                .start_task_instance(id, &running("h", 1))
                .await
                .unwrap();
        }
        store
            .update_task_instance_state(a, &terminal(TerminalState::Failed, None))
            .await
            .unwrap();
        store
            .update_task_instance_state(b, &terminal(TerminalState::Failed, Some(None)))
            .await
            .unwrap();
        let get = |id| store.task_instance(id);
        assert_eq!(
            get(a).await.unwrap().unwrap().rendered_map_index.as_deref(),
            Some("before")
        );
        assert_eq!(get(b).await.unwrap().unwrap().rendered_map_index, None);
    }
}

#[tokio::test]
async fn unknown_task_instance() {
    for store in stores("unknown_task_instance").await {
        let id = Uuid::new_v4();
        assert_eq!(
            store
                .start_task_instance(id, &running("h", 1))
                .await
                .unwrap(),
            StartOutcome::NotFound
        );
        assert_eq!(
            store
                .update_task_instance_state(id, &terminal(TerminalState::Failed, None))
                .await
                .unwrap(),
            StateOutcome::NotFound
        );
        assert_eq!(
            store.heartbeat(id, &beat("h", 1)).await.unwrap(),
            HeartbeatOutcome::NotFound
        );
        assert_eq!(store.task_instance(id).await.unwrap(), None);
    }
}

#[tokio::test]
async fn retry_archives_the_try_under_a_new_id() {
    for store in stores("retry_archives_the_try_under_a_new_id").await {
        let dag = unique("dag");
        let mut new = NewTaskInstance::new(&dag, "a");
        new.max_tries = 1;
        let id = store.create_task_instance(&new).await.unwrap();
        store
            .start_task_instance(id, &running("h", 1))
            .await
            .unwrap();
        let retry = StateChange::Retry {
            end_date: at("2024-05-01T10:00:05Z"),
            rendered_map_index: None,
            retry_delay_seconds: Some(1.5),
            retry_reason: Some("x".repeat(600)),
        };
        assert_eq!(
            store.update_task_instance_state(id, &retry).await.unwrap(),
            StateOutcome::Updated
        );
        // The old id is gone from task_instance and lives in the history as `failed`.
        assert_eq!(store.task_instance(id).await.unwrap(), None);
        let history: String = sqlx::query(sql!(
            store.backend,
            "SELECT state FROM task_instance_history WHERE task_instance_id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_one(&store.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
        assert_eq!(history, "failed");
        let row = sqlx::query(sql!(
            store.backend,
            "SELECT CAST(id AS TEXT), state, retry_delay_override, retry_reason, try_number \
             FROM task_instance WHERE dag_id = $1"
        ))
        .bind(&dag)
        .fetch_one(&store.pool)
        .await
        .unwrap();
        let new_id = parse_uuid(&row.try_get::<String, _>(0).unwrap()).unwrap();
        assert_ne!(new_id, id);
        assert_eq!(row.try_get::<String, _>(1).unwrap(), "up_for_retry");
        assert_eq!(row.try_get::<Option<f64>, _>(2).unwrap(), Some(1.5));
        assert_eq!(
            row.try_get::<Option<String>, _>(3).unwrap().unwrap().len(),
            500
        );
        assert_eq!(row.try_get::<i64, _>(4).unwrap(), 1);
        // Further calls with the old id: 404 on /state, 410 on /heartbeat.
        assert_eq!(
            store.update_task_instance_state(id, &retry).await.unwrap(),
            StateOutcome::NotFound
        );
        assert_eq!(
            store.heartbeat(id, &beat("h", 1)).await.unwrap(),
            HeartbeatOutcome::Archived
        );
    }
}

#[tokio::test]
async fn reschedule_records_a_task_reschedule_row() {
    for store in stores("reschedule_records_a_task_reschedule_row").await {
        let dag = unique("dag");
        let id = store
            .create_task_instance(&NewTaskInstance::new(&dag, "sensor"))
            .await
            .unwrap();
        store
            .start_task_instance(id, &running("h", 1))
            .await
            .unwrap();
        let change = StateChange::Reschedule {
            reschedule_date: at("2024-05-01T12:00:00Z"),
            end_date: at("2024-05-01T11:00:00Z"),
        };
        assert_eq!(
            store.update_task_instance_state(id, &change).await.unwrap(),
            StateOutcome::Updated
        );
        let ti = store.task_instance(id).await.unwrap().unwrap();
        assert_eq!(ti.state, Some(TiState::UpForReschedule));
        // Queued again by the scheduler, the next /run counts the reschedule.
        sqlx::query(sql!(
            store.backend,
            "UPDATE task_instance SET state = 'queued' WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .execute(&store.pool)
        .await
        .unwrap();
        let StartOutcome::Started(ctx) = store
            .start_task_instance(id, &running("h", 2))
            .await
            .unwrap()
        else {
            panic!("not started")
        };
        assert_eq!(ctx.task_reschedule_count, 1);
        let row = sqlx::query(sql!(
            store.backend,
            "SELECT CAST(reschedule_date AS TEXT), CAST(end_date AS TEXT) FROM task_reschedule \
             WHERE ti_id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(
            parse_time(&row.try_get::<String, _>(0).unwrap()).unwrap(),
            at("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            parse_time(&row.try_get::<String, _>(1).unwrap()).unwrap(),
            at("2024-05-01T11:00:00Z")
        );
    }
}

#[tokio::test]
async fn intermediate_states_end_the_task_failed() {
    for store in stores("intermediate_states_end_the_task_failed").await {
        let id = store
            .create_task_instance(&NewTaskInstance::new(unique("dag"), "c"))
            .await
            .unwrap();
        store
            .start_task_instance(id, &running("h", 1))
            .await
            .unwrap();
        let change = StateChange::Intermediate(TiState::Queued);
        assert_eq!(
            store.update_task_instance_state(id, &change).await.unwrap(),
            StateOutcome::Updated
        );
        let ti = store.task_instance(id).await.unwrap().unwrap();
        assert_eq!(ti.state, Some(TiState::Failed));
        assert!(ti.end_date.is_some());
        // Asked again: not running any more, and not `queued` either.
        assert_eq!(
            store.update_task_instance_state(id, &change).await.unwrap(),
            StateOutcome::NotRunning {
                previous_state: Some(TiState::Failed)
            }
        );
    }
}

#[tokio::test]
async fn resuming_from_a_deferral_keeps_the_start_date() {
    for store in stores("resuming_from_a_deferral_keeps_the_start_date").await {
        let id = store
            .create_task_instance(&NewTaskInstance::new(unique("dag"), "d"))
            .await
            .unwrap();
        // As the triggerer leaves it: scheduled again with next_method/next_kwargs.
        sqlx::query(sql!(
            store.backend,
            "UPDATE task_instance SET state = 'queued', start_date = '2024-05-01 09:00:00.000000'::timestamptz, \
             next_method = 'execute_complete', next_kwargs = '{\"event\": 1}'::jsonb WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .execute(&store.pool)
        .await
        .unwrap();
        let StartOutcome::Started(ctx) = store
            .start_task_instance(id, &running("h", 1))
            .await
            .unwrap()
        else {
            panic!("not started")
        };
        let resume = ctx.resume.expect("resume");
        assert_eq!(resume.next_method, "execute_complete");
        let kwargs: serde_json::Value =
            serde_json::from_str(resume.next_kwargs.as_deref().unwrap()).unwrap();
        assert_eq!(kwargs, serde_json::json!({"event": 1}));
        assert_eq!(resume.start_date, Some(at("2024-05-01T09:00:00Z")));
        assert!(ctx.xcom_keys_to_clear.is_empty());
        let ti = store.task_instance(id).await.unwrap().unwrap();
        assert_eq!(ti.start_date, Some(at("2024-05-01T09:00:00Z")));
    }
}

#[tokio::test]
async fn resuming_with_falsy_kwargs_takes_the_new_start_date() {
    // Airflow keeps the start date only when `next_kwargs` is truthy in Python.
    for store in stores("resuming_with_falsy_kwargs_takes_the_new_start_date").await {
        for kwargs in ["{}", "0.0", "false", "[]"] {
            let id = store
                .create_task_instance(&NewTaskInstance::new(unique("dag"), "d"))
                .await
                .unwrap();
            sqlx::query(sql!(
                store.backend,
                "UPDATE task_instance SET start_date = '2024-05-01 09:00:00.000000'::timestamptz, \
                 next_method = 'execute_complete', next_kwargs = $2::jsonb WHERE id = $1::uuid"
            ))
            .bind(uuid_param(id))
            .bind(kwargs)
            .execute(&store.pool)
            .await
            .unwrap();
            let StartOutcome::Started(ctx) = store
                .start_task_instance(id, &running("h", 1))
                .await
                .unwrap()
            else {
                panic!("not started")
            };
            assert_eq!(ctx.resume.expect("resume").next_method, "execute_complete");
            let ti = store.task_instance(id).await.unwrap().unwrap();
            assert_eq!(ti.start_date, Some(at("2024-05-01T10:00:00Z")), "{kwargs}");
        }
    }
}

#[tokio::test]
async fn finishing_logs_the_host_name_as_python_writes_it() {
    // PostgreSQL writes a plain finish's log row in SQL (ASCII host names
    // other than DEL) and falls back to the transaction for the others.
    for store in stores("finishing_logs_the_host_name_as_python_writes_it").await {
        for host in [
            "h1",
            "a\"b\\c\td\u{1}",
            "h\u{e9}te",
            "del\u{7f}",
            "\u{1f600}",
        ] {
            let dag = unique("dag");
            let id = store
                .create_task_instance(&NewTaskInstance::new(&dag, "t"))
                .await
                .unwrap();
            assert!(matches!(
                store
                    .start_task_instance(id, &running(host, 1))
                    .await
                    .unwrap(),
                StartOutcome::Started(_)
            ));
            let success = terminal(TerminalState::Skipped, None);
            assert_eq!(
                store
                    .update_task_instance_state(id, &success)
                    .await
                    .unwrap(),
                StateOutcome::Updated,
                "{host:?}"
            );
            let extras: Vec<(String, String)> = sqlx::query(sql!(
                store.backend,
                "SELECT event, extra FROM log WHERE dag_id = $1 ORDER BY id"
            ))
            .bind(&dag)
            .fetch_all(&store.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.try_get(0).unwrap(), row.try_get(1).unwrap()))
            .collect();
            let extra = host_name_extra(Some(host)).unwrap();
            assert_eq!(
                extras,
                [("running".into(), extra.clone()), ("skipped".into(), extra)],
                "{host:?}"
            );
            let ti = store.task_instance(id).await.unwrap().unwrap();
            assert_eq!(ti.state, Some(TiState::Skipped));
            assert_eq!(ti.duration, Some(3600.0));
            assert_eq!(
                store
                    .update_task_instance_state(id, &success)
                    .await
                    .unwrap(),
                StateOutcome::AlreadyInState
            );
        }
    }
}

#[tokio::test]
async fn concurrent_starts_have_one_winner() {
    for store in stores("concurrent_starts_have_one_winner").await {
        let id = store
            .create_task_instance(&NewTaskInstance::new(unique("dag"), "t"))
            .await
            .unwrap();
        let runs: Vec<_> = (0..4).map(|pid| running("h", pid)).collect();
        let (a, b, c, d) = tokio::join!(
            store.start_task_instance(id, &runs[0]),
            store.start_task_instance(id, &runs[1]),
            store.start_task_instance(id, &runs[2]),
            store.start_task_instance(id, &runs[3]),
        );
        let outcomes = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
        let started = outcomes
            .iter()
            .filter(|o| matches!(o, StartOutcome::Started(_)))
            .count();
        assert_eq!(started, 1, "{outcomes:?}");
    }
}

#[tokio::test]
async fn two_stores_on_one_sqlite_file_have_one_winner() {
    // Like the CLI and a server, or two processes, on one data directory.
    let target = crate::store::testing::temp_sqlite();
    let (a, b) = (
        Store::open(&target).await.unwrap(),
        Store::open(&target).await.unwrap(),
    );
    for round in 0..5 {
        let id = a
            .create_task_instance(&NewTaskInstance::new(unique("dag"), format!("t{round}")))
            .await
            .unwrap();
        let (run_a, run_b) = (running("a", 1), running("b", 2));
        let (one, two) = tokio::join!(
            a.start_task_instance(id, &run_a),
            b.start_task_instance(id, &run_b),
        );
        let started = [one.unwrap(), two.unwrap()]
            .iter()
            .filter(|o| matches!(o, StartOutcome::Started(_)))
            .count();
        assert_eq!(started, 1);
        assert_eq!(
            b.task_instance(id).await.unwrap().unwrap().state,
            Some(TiState::Running)
        );
    }
}

#[test]
fn run_types() {
    assert_eq!(run_type_of("scheduled__2024"), "scheduled");
    assert_eq!(run_type_of("asset_triggered__x"), "asset_triggered");
    assert_eq!(run_type_of("my-run"), "manual");
}

#[test]
fn log_extra_is_pythons_json_dumps() {
    assert_eq!(host_name_extra(None), None);
    assert_eq!(host_name_extra(Some("")), None);
    assert_eq!(
        host_name_extra(Some("a\"b\\c\nd é 😀")).unwrap(),
        r#"{"host_name": "a\"b\\c\nd \u00e9 \ud83d\ude00"}"#
    );
}

#[test]
fn next_kwargs_truthiness_is_pythons() {
    for falsy in [
        None,
        Some("null"),
        Some("{}"),
        Some(" [] "),
        Some("\"\""),
        Some("0"),
        Some("0.0"),
        Some("0.00"),
        Some("false"),
        Some("{ }"),
    ] {
        assert!(!json_truthy(falsy), "{falsy:?}");
    }
    for truthy in [
        Some("{\"a\": 1}"),
        Some("[1]"),
        Some("\"x\""),
        Some("1"),
        Some("0.5"),
        Some("true"),
    ] {
        assert!(json_truthy(truthy), "{truthy:?}");
    }
}
