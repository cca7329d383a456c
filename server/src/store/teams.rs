//! `[core] multi_team`: which team a task belongs to, and what it may reach.

use uuid::Uuid;

use super::{Store, StoreError};

impl Store {
    /// Whether the task instance `requester` may read (`write == false`) or
    /// write an XCom of `dag_id`, as Airflow's `has_xcom_access`: always
    /// without `[core] multi_team`; otherwise the same team (a teamless task and
    /// a teamless DAG included), and for reads also a teamless DAG. Teams come
    /// from `dag -> dag_bundle -> dag_bundle_team`.
    pub async fn xcom_access(
        &self,
        requester: Uuid,
        dag_id: &str,
        write: bool,
    ) -> Result<bool, StoreError> {
        if !self.transitions.multi_team {
            return Ok(true);
        }
        let mut conn = self.pool.acquire().await?;
        let requester_team =
            super::triggers::team_name_for_ti(&mut conn, self.backend, requester).await?;
        let target_team = super::asset_changes::team_of(&mut conn, dag_id).await?;
        Ok(target_team == requester_team || (!write && target_team.is_none()))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::stores;
    use crate::store::{NewTaskInstance, TransitionSettings};

    #[tokio::test]
    async fn xcoms_stay_within_a_team_in_multi_team_mode() {
        for store in stores("xcoms_stay_within_a_team_in_multi_team_mode").await {
            let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
            let dag = |name: &str| format!("{name}_{tag}");
            let mut ids = Vec::new();
            for name in ["a", "a2", "b", "none"] {
                ids.push(
                    store
                        .create_task_instance(&NewTaskInstance::new(dag(name), "t"))
                        .await
                        .unwrap(),
                );
            }
            let (team_a, team_b) = (format!("a{tag}"), format!("b{tag}"));
            let mut statements = vec![format!(
                "INSERT INTO team (name) VALUES ('{team_a}'), ('{team_b}')"
            )];
            for (name, team) in [
                ("a", Some(&team_a)),
                ("a2", Some(&team_a)),
                ("b", Some(&team_b)),
                ("none", None),
            ] {
                let bundle = dag(&format!("bundle_{name}"));
                statements.push(format!(
                    "INSERT INTO dag_bundle (name, active) VALUES ('{bundle}', true)"
                ));
                statements.push(format!(
                    "UPDATE dag SET bundle_name = '{bundle}' WHERE dag_id = '{}'",
                    dag(name)
                ));
                if let Some(team) = team {
                    statements.push(format!(
                        "INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ('{bundle}', '{team}')"
                    ));
                }
            }
            for statement in &statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(&store.pool)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
            }
            let (in_a, in_b, teamless) = (ids[0], ids[2], ids[3]);

            // Without multi_team: everything, as in Airflow.
            assert!(store.xcom_access(in_b, &dag("a"), true).await.unwrap());

            let store = store.with_transitions(TransitionSettings {
                multi_team: true,
                ..TransitionSettings::default()
            });
            let access = |who, name: &'static str, write| {
                let store = &store;
                let dag_id = dag(name);
                async move { store.xcom_access(who, &dag_id, write).await.unwrap() }
            };
            // Same team: read and write.
            assert!(access(in_a, "a2", false).await && access(in_a, "a2", true).await);
            // Another team: neither.
            assert!(!access(in_b, "a", false).await && !access(in_b, "a", true).await);
            // A teamless DAG: read only, for a team's task; a teamless task may also write.
            assert!(access(in_a, "none", false).await && !access(in_a, "none", true).await);
            assert!(access(teamless, "none", true).await);
            // A teamless task reaches no team's XComs.
            assert!(!access(teamless, "a", false).await);
        }
    }
}
