//! Connections on Airflow's `connection` table. `password` and `extra` are each
//! Fernet-encrypted when non-empty, with their own flags (`is_encrypted`,
//! `is_extra_encrypted`), as Airflow's `FernetFieldsMixin` does.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::sql::sql;
use super::{Store, StoreError};

/// A connection to create or replace (the CLI's `connection add`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewConnection {
    /// Connection id.
    pub conn_id: String,
    /// Connection type, e.g. `postgres`.
    pub conn_type: String,
    /// Host.
    pub host: Option<String>,
    /// Schema (database) name.
    pub schema: Option<String>,
    /// Login.
    pub login: Option<String>,
    /// Password (encrypted at rest when a Fernet key is configured).
    pub password: Option<String>,
    /// Port.
    pub port: Option<i64>,
    /// Extra, a JSON object as text (encrypted at rest when a key is configured).
    pub extra: Option<String>,
}

/// A connection as stored, decrypted.
pub type Connection = NewConnection;

impl Store {
    /// Creates or replaces a connection.
    pub async fn upsert_connection(&self, conn: &NewConnection) -> Result<(), StoreError> {
        let (password, password_encrypted) = self.seal(conn.password.as_deref());
        let (extra, extra_encrypted) = self.seal(conn.extra.as_deref());
        sqlx::query(sql!(
            self.backend,
            "INSERT INTO connection (conn_id, conn_type, host, schema, login, password, port, \
             extra, is_encrypted, is_extra_encrypted) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (conn_id) DO UPDATE SET conn_type = excluded.conn_type, \
             host = excluded.host, schema = excluded.schema, login = excluded.login, \
             password = excluded.password, port = excluded.port, extra = excluded.extra, \
             is_encrypted = excluded.is_encrypted, is_extra_encrypted = excluded.is_extra_encrypted"
        ))
        .bind(&conn.conn_id)
        .bind(&conn.conn_type)
        .bind(conn.host.as_deref())
        .bind(conn.schema.as_deref())
        .bind(conn.login.as_deref())
        .bind(password)
        .bind(conn.port)
        .bind(extra)
        .bind(password_encrypted)
        .bind(extra_encrypted)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Reads a connection from the metastore, decrypting its password and extra.
    pub async fn connection(&self, conn_id: &str) -> Result<Option<Connection>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT conn_id, conn_type, host, schema, login, password, port, extra, \
                     CAST(is_encrypted AS INTEGER) AS is_encrypted, \
                     CAST(is_extra_encrypted AS INTEGER) AS is_extra_encrypted \
                     FROM connection WHERE conn_id = $1"
                ))
                .bind(conn_id)
            })
            .await?;
        row.map(|row| self.connection_from_row(&row)).transpose()
    }

    fn connection_from_row(&self, row: &AnyRow) -> Result<Connection, StoreError> {
        let conn_id: String = row.try_get("conn_id")?;
        let password = self.unseal(
            row.try_get("password")?,
            row.try_get("is_encrypted")?,
            || format!("password of connection `{conn_id}`"),
        )?;
        let extra = self.unseal(
            row.try_get("extra")?,
            row.try_get("is_extra_encrypted")?,
            || format!("extra of connection `{conn_id}`"),
        )?;
        Ok(Connection {
            conn_type: row.try_get("conn_type")?,
            host: row.try_get("host")?,
            schema: row.try_get("schema")?,
            login: row.try_get("login")?,
            password,
            port: row.try_get("port")?,
            extra,
            conn_id,
        })
    }

    /// A value to store and its flag: encrypted when non-empty and a key is set.
    pub(super) fn seal(&self, value: Option<&str>) -> (Option<String>, bool) {
        match value {
            Some(v) if !v.is_empty() && self.fernet.is_encrypting() => {
                (Some(self.fernet.encrypt(v)), true)
            }
            other => (other.map(str::to_owned), false),
        }
    }

    pub(super) fn unseal(
        &self,
        stored: Option<String>,
        encrypted: i64,
        what: impl FnOnce() -> String,
    ) -> Result<Option<String>, StoreError> {
        match stored {
            Some(value) if encrypted != 0 && !value.is_empty() => {
                if !self.fernet.is_encrypting() {
                    return Err(StoreError::Decrypt {
                        what: what(),
                        source: crate::crypto::CryptoError::InvalidToken,
                    });
                }
                self.fernet
                    .decrypt(&value)
                    .map(Some)
                    .map_err(|source| StoreError::Decrypt {
                        what: what(),
                        source,
                    })
            }
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Fernet;
    use crate::store::testing::{stores, stores_with};

    fn sample(conn_id: &str) -> NewConnection {
        NewConnection {
            conn_id: conn_id.into(),
            conn_type: "postgres".into(),
            host: Some("db".into()),
            schema: Some("app".into()),
            login: Some("me".into()),
            password: Some("pw".into()),
            port: Some(5432),
            extra: Some(r#"{"sslmode":"require"}"#.into()),
        }
    }

    #[tokio::test]
    async fn connections_round_trip() {
        for store in stores("connections_round_trip").await {
            let conn_id = format!("conn_{}", uuid::Uuid::new_v4().simple());
            assert_eq!(store.connection(&conn_id).await.unwrap(), None);
            let mut conn = sample(&conn_id);
            store.upsert_connection(&conn).await.unwrap();
            conn.port = None;
            conn.host = Some("db2".into());
            store.upsert_connection(&conn).await.unwrap();
            let got = store.connection(&conn_id).await.unwrap().unwrap();
            assert_eq!(got, conn);
        }
    }

    #[tokio::test]
    async fn password_and_extra_are_encrypted_with_their_own_flags() {
        let key = Fernet::generate_key();
        for store in stores_with("connections_encrypted", Some(&key)).await {
            let conn_id = format!("conn_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sample(&conn_id);
            conn.extra = Some(String::new());
            store.upsert_connection(&conn).await.unwrap();
            let row = sqlx::query(sql!(
                store.backend,
                "SELECT password, extra, CAST(is_encrypted AS INTEGER), \
                 CAST(is_extra_encrypted AS INTEGER) FROM connection WHERE conn_id = $1"
            ))
            .bind(&conn_id)
            .fetch_one(&store.pool)
            .await
            .unwrap();
            assert!(row.try_get::<String, _>(0).unwrap().starts_with("gAAAAA"));
            // An empty extra is not encrypted, as in Airflow.
            assert_eq!(row.try_get::<String, _>(1).unwrap(), "");
            assert_eq!(row.try_get::<i64, _>(2).unwrap(), 1);
            assert_eq!(row.try_get::<i64, _>(3).unwrap(), 0);
            assert_eq!(store.connection(&conn_id).await.unwrap().unwrap(), conn);
            // Read without a key: an error naming the field, never the ciphertext.
            let keyless = Store {
                fernet: Fernet::from_config(None).unwrap(),
                ..store.clone()
            };
            let err = keyless.connection(&conn_id).await.unwrap_err();
            assert!(err.to_string().contains("password of connection"), "{err}");
        }
    }
}
