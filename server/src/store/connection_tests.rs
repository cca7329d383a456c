//! Connection tests on Airflow's `connection_test_request` table, with the
//! effects of Airflow's Execution API (`routes/connection_tests.py`,
//! `models/connection_test.py`): the row is locked (`FOR UPDATE`; on SQLite
//! the write transaction's lock), its credentials are handed out once (moving
//! it to `running`), and a worker's result finishes it; a successful test with
//! `commit_on_success` writes the connection into `connection`, encrypted as
//! Airflow's `Connection` model encrypts it.

use sqlx::Row as _;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::connections::Connection;
use super::sql::{sql, time_param, uuid_param};
use super::{Store, StoreError, now};

/// How a worker says a test ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionTestResult {
    /// `success`.
    Success,
    /// `failed`.
    Failed,
}

impl ConnectionTestResult {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionTestResult::Success => "success",
            ConnectionTestResult::Failed => "failed",
        }
    }
}

/// What fetching a test's connection found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionTestFetch {
    /// The connection to test (decrypted); the test is now `running`.
    Fetched(Box<Connection>),
    /// No such test.
    NotFound,
    /// Not `pending` or `queued`: the credentials were handed out already, or it ended.
    NotFetchable {
        /// Its state.
        state: String,
    },
}

/// What reporting a test's result found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionTestFinish {
    /// Recorded (and the connection committed when asked for).
    Finished,
    /// No such test.
    NotFound,
    /// It ended already.
    Terminal {
        /// Its state.
        state: String,
    },
    /// Neither active nor ended (a state this server does not know).
    Inactive {
        /// Its state.
        state: String,
    },
    /// The tested connection cannot be stored as it is (Airflow fails with a 500).
    InvalidConnection {
        /// Why.
        reason: String,
    },
}

/// A locked `connection_test_request` row, decrypted.
struct TestRow {
    state: String,
    commit_on_success: bool,
    team_name: Option<String>,
    connection: Connection,
}

impl Store {
    async fn lock_connection_test(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: Uuid,
    ) -> Result<Option<TestRow>, StoreError> {
        let row = sqlx::query(sql!(
            self.backend,
            "SELECT state, connection_id, conn_type, host, login, schema, port, password, extra, \
             CAST(is_encrypted AS INTEGER) AS is_encrypted, \
             CAST(is_extra_encrypted AS INTEGER) AS is_extra_encrypted, \
             CAST(commit_on_success AS INTEGER) AS commit_on_success, team_name \
             FROM connection_test_request WHERE id = $1::uuid FOR UPDATE"
        ))
        .bind(uuid_param(id))
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| self.test_from_row(&row, id)).transpose()
    }

    fn test_from_row(&self, row: &AnyRow, id: Uuid) -> Result<TestRow, StoreError> {
        let password = self.unseal(
            row.try_get("password")?,
            row.try_get("is_encrypted")?,
            || format!("password of connection test {id}"),
        )?;
        let extra = self.unseal(
            row.try_get("extra")?,
            row.try_get("is_extra_encrypted")?,
            || format!("extra of connection test {id}"),
        )?;
        Ok(TestRow {
            state: row.try_get("state")?,
            commit_on_success: row.try_get::<i64, _>("commit_on_success")? != 0,
            team_name: row.try_get("team_name")?,
            connection: Connection {
                conn_id: row.try_get("connection_id")?,
                conn_type: row.try_get("conn_type")?,
                host: row.try_get("host")?,
                schema: row.try_get("schema")?,
                login: row.try_get("login")?,
                password,
                port: row.try_get("port")?,
                extra,
            },
        })
    }

    /// Hands out a pending or queued test's connection once, moving the test to `running`.
    pub async fn fetch_connection_test(&self, id: Uuid) -> Result<ConnectionTestFetch, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(test) = self.lock_connection_test(&mut tx, id).await? else {
            return Ok(ConnectionTestFetch::NotFound);
        };
        if !matches!(test.state.as_str(), "pending" | "queued") {
            return Ok(ConnectionTestFetch::NotFetchable { state: test.state });
        }
        // Running is an active state: Airflow's validator keeps
        // `active_connection_id` = `connection_id`.
        sqlx::query(sql!(
            self.backend,
            "UPDATE connection_test_request SET state = 'running', \
             active_connection_id = connection_id, updated_at = $2::timestamptz \
             WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(time_param(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ConnectionTestFetch::Fetched(Box::new(test.connection)))
    }

    /// Records a running (or still pending/queued) test's result; a success
    /// with `commit_on_success` creates or updates the connection.
    pub async fn finish_connection_test(
        &self,
        id: Uuid,
        result: ConnectionTestResult,
        result_message: Option<&str>,
    ) -> Result<ConnectionTestFinish, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(test) = self.lock_connection_test(&mut tx, id).await? else {
            return Ok(ConnectionTestFinish::NotFound);
        };
        match test.state.as_str() {
            "success" | "failed" => {
                return Ok(ConnectionTestFinish::Terminal { state: test.state });
            }
            "pending" | "queued" | "running" => {}
            _ => return Ok(ConnectionTestFinish::Inactive { state: test.state }),
        }
        sqlx::query(sql!(
            self.backend,
            "UPDATE connection_test_request SET state = $2, result_message = $3, \
             active_connection_id = NULL, updated_at = $4::timestamptz WHERE id = $1::uuid"
        ))
        .bind(uuid_param(id))
        .bind(result.as_str())
        .bind(result_message)
        .bind(time_param(now()))
        .execute(&mut *tx)
        .await?;
        if result == ConnectionTestResult::Success && test.commit_on_success {
            if let Err(reason) = check_connection(&test.connection) {
                return Ok(ConnectionTestFinish::InvalidConnection { reason });
            }
            self.commit_tested_connection(&mut tx, &test).await?;
        }
        tx.commit().await?;
        Ok(ConnectionTestFinish::Finished)
    }

    /// Airflow's `ConnectionTestRequest.commit_to_connection_table`: a new
    /// connection gets every field and the test's team; an existing one keeps
    /// its description and team, and keeps its password when the test has none
    /// (the model's password setter ignores an empty value).
    async fn commit_tested_connection(
        &self,
        conn: &mut sqlx::AnyConnection,
        test: &TestRow,
    ) -> Result<(), StoreError> {
        let c = &test.connection;
        let (extra, extra_encrypted) = self.seal(c.extra.as_deref());
        let password = c.password.as_deref().filter(|p| !p.is_empty());
        let (password, password_encrypted) = self.seal(password);
        let updated = match &password {
            Some(password) => sqlx::query(sql!(
                self.backend,
                "UPDATE connection SET conn_type = $2, host = $3, login = $4, schema = $5, \
                 port = $6, extra = $7, is_extra_encrypted = $8, password = $9, \
                 is_encrypted = $10 WHERE conn_id = $1"
            ))
            .bind(&c.conn_id)
            .bind(&c.conn_type)
            .bind(c.host.as_deref())
            .bind(c.login.as_deref())
            .bind(c.schema.as_deref())
            .bind(c.port)
            .bind(extra.as_deref())
            .bind(extra_encrypted)
            .bind(password.as_str())
            .bind(password_encrypted),
            None => sqlx::query(sql!(
                self.backend,
                "UPDATE connection SET conn_type = $2, host = $3, login = $4, schema = $5, \
                 port = $6, extra = $7, is_extra_encrypted = $8 WHERE conn_id = $1"
            ))
            .bind(&c.conn_id)
            .bind(&c.conn_type)
            .bind(c.host.as_deref())
            .bind(c.login.as_deref())
            .bind(c.schema.as_deref())
            .bind(c.port)
            .bind(extra.as_deref())
            .bind(extra_encrypted),
        }
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(sql!(
                self.backend,
                "INSERT INTO connection (conn_id, conn_type, description, host, login, schema, \
                 port, password, extra, is_encrypted, is_extra_encrypted, team_name) \
                 VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&c.conn_id)
            .bind(&c.conn_type)
            .bind(c.host.as_deref())
            .bind(c.login.as_deref())
            .bind(c.schema.as_deref())
            .bind(c.port)
            .bind(password.as_deref())
            .bind(extra.as_deref())
            .bind(password_encrypted)
            .bind(extra_encrypted)
            .bind(test.team_name.as_deref())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// What Airflow's `Connection` model refuses: an id outside
/// `^[\w#!()\-.:/\\]{1,250}$` and an `extra` that is not a JSON object.
fn check_connection(c: &Connection) -> Result<(), String> {
    let id_ok = !c.conn_id.is_empty()
        && c.conn_id.chars().count() <= 250
        && c.conn_id
            .chars()
            .all(|ch| ch.is_alphanumeric() || "_#!()-.:/\\".contains(ch));
    if !id_ok {
        return Err(format!(
            "connection id `{}` is not a valid Airflow connection id",
            c.conn_id
        ));
    }
    if let Some(extra) = c.extra.as_deref().filter(|e| !e.is_empty()) {
        match serde_json::from_str::<serde_json::Value>(extra) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Err(format!(
                    "the `extra` of connection `{}` is JSON but not an object",
                    c.conn_id
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the `extra` of connection `{}` is not JSON",
                    c.conn_id
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_and_extras_are_checked_as_airflow_does() {
        let mut c = Connection {
            conn_id: "my_db-1.a:b/c(d)#!\\é".into(),
            conn_type: "postgres".into(),
            extra: Some(r#"{"a": 1}"#.into()),
            ..Connection::default()
        };
        assert_eq!(check_connection(&c), Ok(()));
        c.extra = Some(String::new());
        assert_eq!(check_connection(&c), Ok(()));
        c.extra = Some("[1]".into());
        assert!(check_connection(&c).unwrap_err().contains("not an object"));
        c.extra = Some("{".into());
        assert!(check_connection(&c).unwrap_err().contains("not JSON"));
        c.extra = None;
        for bad in ["", "has space", "semi;colon", &"x".repeat(251)] {
            c.conn_id = bad.into();
            assert!(check_connection(&c).is_err(), "{bad:?}");
        }
    }
}
