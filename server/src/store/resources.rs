//! Variables and connections: plain keyed rows.

use sqlx::Row as _;

use super::{Store, StoreError, now, timestamp};
use crate::models::{ConnectionResponse, VariableResponse};

/// A connection to create or replace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewConnection {
    /// Connection id.
    pub conn_id: String,
    /// Connection type, e.g. `postgres`, `http`.
    pub conn_type: String,
    /// Host.
    pub host: Option<String>,
    /// Schema (database) name.
    pub schema: Option<String>,
    /// Login.
    pub login: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra, a JSON document as a string.
    pub extra: Option<String>,
}

impl Store {
    /// Creates or replaces a variable.
    pub async fn set_variable(
        &self,
        key: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        self.put_variable(key, Some(value), description).await
    }

    /// Creates or replaces a variable whose value may be null (`PUT /variables`).
    pub async fn put_variable(
        &self,
        key: &str,
        value: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO variables (key, val, description, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET val = excluded.val, \
             description = excluded.description, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(description)
        .bind(timestamp(now()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Reads a variable.
    pub async fn variable(&self, key: &str) -> Result<Option<VariableResponse>, StoreError> {
        let row = sqlx::query("SELECT key, val FROM variables WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(VariableResponse {
                key: row.try_get("key")?,
                value: row.try_get("val")?,
            }),
            None => None,
        })
    }

    /// Deletes a variable; returns whether it existed.
    pub async fn delete_variable(&self, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM variables WHERE key = $1")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Creates or replaces a connection.
    pub async fn upsert_connection(&self, conn: &NewConnection) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connections (conn_id, conn_type, host, schema_name, login, password, port, \
             extra, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (conn_id) DO UPDATE SET conn_type = excluded.conn_type, \
             host = excluded.host, schema_name = excluded.schema_name, login = excluded.login, \
             password = excluded.password, port = excluded.port, extra = excluded.extra, \
             updated_at = excluded.updated_at",
        )
        .bind(&conn.conn_id)
        .bind(&conn.conn_type)
        .bind(conn.host.as_deref())
        .bind(conn.schema.as_deref())
        .bind(conn.login.as_deref())
        .bind(conn.password.as_deref())
        .bind(conn.port)
        .bind(conn.extra.as_deref())
        .bind(timestamp(now()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Reads a connection.
    pub async fn connection(
        &self,
        conn_id: &str,
    ) -> Result<Option<ConnectionResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT conn_id, conn_type, host, schema_name, login, password, port, extra \
             FROM connections WHERE conn_id = $1",
        )
        .bind(conn_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => Some(ConnectionResponse {
                conn_id: row.try_get("conn_id")?,
                conn_type: row.try_get("conn_type")?,
                host: row.try_get("host")?,
                schema: row.try_get("schema_name")?,
                login: row.try_get("login")?,
                password: row.try_get("password")?,
                port: row.try_get("port")?,
                extra: row.try_get("extra")?,
            }),
            None => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::stores;

    #[tokio::test]
    async fn variables_round_trip() {
        for store in stores("variables_round_trip").await {
            let key = format!("var_{}", uuid::Uuid::new_v4().simple());
            assert_eq!(store.variable(&key).await.unwrap(), None);
            store
                .set_variable(&key, "one", Some("first"))
                .await
                .unwrap();
            store.set_variable(&key, "two", None).await.unwrap();
            assert_eq!(
                store.variable(&key).await.unwrap(),
                Some(VariableResponse {
                    key: key.clone(),
                    value: Some("two".into())
                })
            );
            store.put_variable(&key, None, None).await.unwrap();
            assert_eq!(store.variable(&key).await.unwrap().unwrap().value, None);
            assert!(store.delete_variable(&key).await.unwrap());
            assert!(!store.delete_variable(&key).await.unwrap());
            assert_eq!(store.variable(&key).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn connections_round_trip() {
        for store in stores("connections_round_trip").await {
            let conn_id = format!("conn_{}", uuid::Uuid::new_v4().simple());
            assert_eq!(store.connection(&conn_id).await.unwrap(), None);
            let mut conn = NewConnection {
                conn_id: conn_id.clone(),
                conn_type: "postgres".into(),
                host: Some("db".into()),
                schema: Some("app".into()),
                login: Some("me".into()),
                password: Some("pw".into()),
                port: Some(5432),
                extra: Some(r#"{"sslmode":"require"}"#.into()),
            };
            store.upsert_connection(&conn).await.unwrap();
            conn.port = None;
            conn.host = Some("db2".into());
            store.upsert_connection(&conn).await.unwrap();
            let got = store.connection(&conn_id).await.unwrap().unwrap();
            assert_eq!(got.host.as_deref(), Some("db2"));
            assert_eq!(got.port, None);
            assert_eq!(got.schema.as_deref(), Some("app"));
            assert_eq!(got.extra.as_deref(), Some(r#"{"sslmode":"require"}"#));
        }
    }
}
