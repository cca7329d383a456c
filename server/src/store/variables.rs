//! Variables on Airflow's `variable` table, Fernet-encrypted as Airflow does
//! (`airflow/models/variable.py`): `val` holds `fernet.encrypt(str(value))` and
//! `is_encrypted` says whether it was.

use sqlx::Row as _;

use super::sql::sql;
use super::{Store, StoreError};

/// A variable as stored, decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// Its key.
    pub key: String,
    /// Its value (Airflow stores `null` as the text `None`).
    pub value: String,
    /// Its description.
    pub description: Option<String>,
}

impl Store {
    /// Creates or replaces a variable (the CLI's `variable set`).
    pub async fn set_variable(
        &self,
        key: &str,
        value: &str,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        self.put_variable(key, Some(value), description).await
    }

    /// `PUT /variables/{key}`: Airflow's `Variable.set`, where a `null` value
    /// is stored as `str(None)`, the text `None`.
    pub async fn put_variable(
        &self,
        key: &str,
        value: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), StoreError> {
        let value = value.unwrap_or("None");
        sqlx::query(sql!(
            self.backend,
            "INSERT INTO variable (key, val, description, is_encrypted) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET val = excluded.val, \
             description = excluded.description, is_encrypted = excluded.is_encrypted"
        ))
        .bind(key)
        .bind(self.fernet.encrypt(value))
        .bind(description)
        .bind(self.fernet.is_encrypting())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Reads a variable from the metastore. A value that does not decrypt is
    /// [`StoreError::Decrypt`] (Airflow logs it and answers 404).
    pub async fn variable(&self, key: &str) -> Result<Option<Variable>, StoreError> {
        let row = self
            .read_optional(|| {
                sqlx::query(sql!(
                    self.backend,
                    "SELECT key, val, description, CAST(is_encrypted AS INTEGER) AS is_encrypted \
                     FROM variable WHERE key = $1"
                ))
                .bind(key)
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.try_get("val")?;
        let encrypted: i64 = row.try_get("is_encrypted")?;
        let value = if encrypted != 0 {
            self.fernet
                .decrypt(&stored)
                .map_err(|source| StoreError::Decrypt {
                    what: format!("variable `{key}`"),
                    source,
                })?
        } else {
            stored
        };
        Ok(Some(Variable {
            key: row.try_get("key")?,
            value,
            description: row.try_get("description")?,
        }))
    }

    /// `DELETE /variables/{key}`; whether a row was deleted.
    pub async fn delete_variable(&self, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql!(self.backend, "DELETE FROM variable WHERE key = $1"))
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Escapes `%`, `_` and the escape character `/` for `LIKE ... ESCAPE '/'` (SQLAlchemy's
/// `startswith(..., autoescape=True)`).
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '/') {
            out.push('/');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// `GET /variables/keys`: a page of the metastore's keys in key order, optionally those
    /// starting with `prefix`, and how many match in all.
    pub async fn variable_keys(
        &self,
        prefix: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<String>, i64), StoreError> {
        let pattern = prefix.map(like_prefix);
        let total: i64 = sqlx::query_scalar(sql!(
            self.backend,
            "SELECT COUNT(*) FROM variable WHERE $1 IS NULL OR key LIKE $1 ESCAPE '/'"
        ))
        .bind(pattern.clone())
        .fetch_one(&self.pool)
        .await?;
        let keys: Vec<String> = sqlx::query_scalar(sql!(
            self.backend,
            "SELECT key FROM variable WHERE $1 IS NULL OR key LIKE $1 ESCAPE '/' \
             ORDER BY key LIMIT $2 OFFSET $3"
        ))
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((keys, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Fernet;
    use crate::store::testing::{stores, stores_with};

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
                Some(Variable {
                    key: key.clone(),
                    value: "two".into(),
                    description: None,
                })
            );
            // Airflow's `str(None)`.
            store.put_variable(&key, None, None).await.unwrap();
            assert_eq!(store.variable(&key).await.unwrap().unwrap().value, "None");
            assert!(store.delete_variable(&key).await.unwrap());
            assert!(!store.delete_variable(&key).await.unwrap());
            assert_eq!(store.variable(&key).await.unwrap(), None);
        }
    }

    #[test]
    fn like_prefixes_escape_wildcards_with_a_slash() {
        assert_eq!(like_prefix("a_b%c/d"), "a/_b/%c//d%");
        assert_eq!(like_prefix(""), "%");
    }

    #[tokio::test]
    async fn variable_keys_match_a_literal_prefix_in_key_order() {
        for store in stores("variable_keys").await {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            let keys = [
                format!("{tag}/b"),
                format!("{tag}/a_x"),
                format!("{tag}/a%"),
                format!("{tag}/aZ"),
                format!("{tag}x"),
            ];
            for key in &keys {
                store.set_variable(key, "v", None).await.unwrap();
            }
            let (page, total) = store
                .variable_keys(Some(&format!("{tag}/a_")), 10, 0)
                .await
                .unwrap();
            assert_eq!((page, total), (vec![format!("{tag}/a_x")], 1));
            // Wildcards are literal; the order is the database's (punctuation-free here,
            // as collations differ on it).
            let (_, total) = store
                .variable_keys(Some(&format!("{tag}/a%")), 10, 0)
                .await
                .unwrap();
            assert_eq!(total, 1);
            let (page, total) = store
                .variable_keys(Some(&format!("{tag}/")), 2, 1)
                .await
                .unwrap();
            assert_eq!(total, 4);
            assert_eq!(page.len(), 2);
            let (all, _) = store
                .variable_keys(Some(&format!("{tag}/")), 10, 0)
                .await
                .unwrap();
            assert_eq!(page[..], all[1..3]);
            let (page, _) = store
                .variable_keys(Some(&format!("{tag}/")), 10, 4)
                .await
                .unwrap();
            assert!(page.is_empty());
            let (_, all) = store.variable_keys(None, 1, 0).await.unwrap();
            assert!(all >= 5);
        }
    }

    #[tokio::test]
    async fn variables_are_encrypted_at_rest_and_survive_a_key_rotation() {
        let (old, new) = (Fernet::generate_key(), Fernet::generate_key());
        for store in stores_with("variables_encrypted", Some(&old)).await {
            let key = format!("var_{}", uuid::Uuid::new_v4().simple());
            store.set_variable(&key, "s3cret", None).await.unwrap();
            let row = sqlx::query(sql!(
                store.backend,
                "SELECT val, CAST(is_encrypted AS INTEGER) FROM variable WHERE key = $1"
            ))
            .bind(&key)
            .fetch_one(&store.pool)
            .await
            .unwrap();
            let val: String = row.try_get(0).unwrap();
            assert!(val.starts_with("gAAAAA"), "{val}");
            assert_eq!(row.try_get::<i64, _>(1).unwrap(), 1);
            assert_eq!(store.variable(&key).await.unwrap().unwrap().value, "s3cret");
            // MultiFernet: the new key first, the old one still decrypts.
            let rotated = Store {
                fernet: Fernet::from_config(Some(&format!("{new},{old}"))).unwrap(),
                ..store.clone()
            };
            assert_eq!(
                rotated.variable(&key).await.unwrap().unwrap().value,
                "s3cret"
            );
            // Without the key: a decryption error, not a panic or plaintext.
            let wrong = Store {
                fernet: Fernet::from_config(Some(&new)).unwrap(),
                ..store.clone()
            };
            assert!(matches!(
                wrong.variable(&key).await,
                Err(StoreError::Decrypt { .. })
            ));
        }
    }
}
