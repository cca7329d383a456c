//! One SQL text for both backends, and the value encodings of Airflow's schema.
//!
//! Queries are written for PostgreSQL. Parameters whose column has a type sqlx's
//! `Any` driver cannot bind as text carry a cast (`$1::uuid`, `$2::timestamptz`,
//! `$3::jsonb`, `$4::json`); [`sql!`] removes those casts for SQLite, where the
//! same columns are `CHAR(32)`, `TIMESTAMP` and `JSON` text, and a trailing
//! `FOR UPDATE ...` row lock, which SQLite does not have (a write transaction
//! there is `BEGIN IMMEDIATE`, which already holds the database's write lock). Columns of those
//! types are read back as `CAST(col AS TEXT)`, which both backends understand,
//! and parsed here: [`parse_uuid`] accepts Airflow's SQLite form (32 hex digits,
//! no dashes) and PostgreSQL's, [`parse_time`] SQLAlchemy's naive UTC text and
//! PostgreSQL's `+00` form.

use std::sync::OnceLock;

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use uuid::Uuid;

use super::StoreError;

/// Which database dialect a query is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite (embedded default, or Airflow's SQLite metadata database).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The query text for `$backend`: `$text` as written for PostgreSQL, or without
/// its parameter casts for SQLite (computed once per call site).
macro_rules! sql {
    ($backend:expr, $text:expr) => {{
        static SQLITE: ::std::sync::OnceLock<String> = ::std::sync::OnceLock::new();
        $crate::store::sql::pick($backend, $text, &SQLITE)
    }};
}
pub(crate) use sql;

/// See [`sql!`].
pub(crate) fn pick(
    backend: Backend,
    text: &'static str,
    sqlite: &'static OnceLock<String>,
) -> &'static str {
    match backend {
        Backend::Postgres => text,
        Backend::Sqlite => sqlite.get_or_init(|| strip_casts(text)),
    }
}

/// Removes every `::identifier` cast and a trailing `FOR UPDATE` clause.
pub(crate) fn strip_casts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("::") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[len..];
    }
    out.push_str(rest);
    if let Some(at) = out.find(" FOR UPDATE") {
        out.truncate(at);
    }
    out
}

/// A truth value selected by a query (`EXISTS (...)`): PostgreSQL's
/// `boolean`, SQLite's integer 0 or 1.
pub(crate) fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, StoreError> {
    use sqlx::Row as _;
    match row.try_get::<bool, _>(column) {
        Ok(flag) => Ok(flag),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// A UUID as bound: 32 lowercase hex digits, as Airflow stores it on SQLite
/// (PostgreSQL's `::uuid` cast reads the same text).
pub(crate) fn uuid_param(id: Uuid) -> String {
    id.simple().to_string()
}

/// A UUID column read as text, in either backend's form.
pub(crate) fn parse_uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text.trim()).map_err(|e| StoreError::Corrupt(format!("uuid `{text}`: {e}")))
}

/// A time as bound: naive UTC with microseconds (`2024-05-01 10:00:00.123456`),
/// SQLAlchemy's SQLite storage format; PostgreSQL sessions run in UTC, so the
/// `::timestamptz` cast reads it as UTC.
pub(crate) fn time_param(t: OffsetDateTime) -> String {
    let t = clamp_utc(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// `t` in UTC; an offset that would push it past what `time` represents clamps
/// to the edge instead of panicking.
pub(crate) fn clamp_utc(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        let edge = if t.offset().is_negative() {
            PrimitiveDateTime::MAX
        } else {
            PrimitiveDateTime::MIN
        };
        edge.assume_utc()
    })
}

/// A timestamp column read as text: `YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|+HH[:MM]]`,
/// naive meaning UTC (SQLAlchemy's `UtcDateTime` on SQLite).
pub(crate) fn parse_time(text: &str) -> Result<OffsetDateTime, StoreError> {
    parse_time_text(text.trim())
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp `{text}` does not parse")))
}

fn parse_time_text(text: &str) -> Option<OffsetDateTime> {
    let (date, rest) = (text.get(..10)?, text.get(10..)?);
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    let date = Date::from_calendar_date(year, month.try_into().ok()?, day).ok()?;
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (clock, zone) = match rest.find(['Z', '+', '-']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let hour: u8 = t.next()?.parse().ok()?;
    let minute: u8 = t.next()?.parse().ok()?;
    let second: u8 = t.next()?.parse().ok()?;
    let micros: u32 = if fraction.is_empty() {
        0
    } else {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = fraction.chars().chain("000000".chars()).take(6).collect();
        digits.parse().ok()?
    };
    let time = Time::from_hms_micro(hour, minute, second, micros).ok()?;
    let offset = match zone {
        "" | "Z" => UtcOffset::UTC,
        z => {
            let sign: i8 = if z.starts_with('-') { -1 } else { 1 };
            let z = &z[1..];
            let (h, m) = match z.split_once(':') {
                Some((h, m)) => (h, m),
                None if z.len() == 4 => (&z[..2], &z[2..]),
                None => (z, "0"),
            };
            let h: i8 = h.parse().ok()?;
            let m: i8 = m.parse().ok()?;
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// An optional timestamp column.
pub(crate) fn parse_opt_time(text: Option<String>) -> Result<Option<OffsetDateTime>, StoreError> {
    text.as_deref().map(parse_time).transpose()
}

/// What a JSON column holds, read as text: Python's `None` is stored as the
/// text `null`, which counts as absent here, like SQL NULL.
pub(crate) fn json_or_none(text: Option<String>) -> Option<String> {
    text.filter(|t| t.trim() != "null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_are_removed_for_sqlite() {
        assert_eq!(
            strip_casts("UPDATE t SET a = $1::timestamptz, b = $2::jsonb WHERE id = $3::uuid"),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3"
        );
        assert_eq!(strip_casts("SELECT 1"), "SELECT 1");
        assert_eq!(strip_casts("x = $1::json)"), "x = $1)");
        assert_eq!(
            strip_casts("SELECT a FROM t WHERE id = $1::uuid FOR UPDATE OF t"),
            "SELECT a FROM t WHERE id = $1"
        );
    }

    #[test]
    fn uuids_in_both_forms() {
        let id = Uuid::parse_str("01a23376-ad93-7a8d-acb8-0730cd787290").unwrap();
        assert_eq!(uuid_param(id), "01a23376ad937a8dacb80730cd787290");
        assert_eq!(parse_uuid("01a23376ad937a8dacb80730cd787290").unwrap(), id);
        assert_eq!(
            parse_uuid("01a23376-ad93-7a8d-acb8-0730cd787290").unwrap(),
            id
        );
        assert!(parse_uuid("nope").is_err());
    }

    #[test]
    fn times_as_sqlalchemy_and_postgres_write_them() {
        let t = parse_time("2024-05-01 10:00:00.123456").unwrap();
        assert_eq!(time_param(t), "2024-05-01 10:00:00.123456");
        assert_eq!(parse_time("2024-05-01 10:00:00.123456+00").unwrap(), t);
        assert_eq!(parse_time("2024-05-01 12:00:00.123456+02:00").unwrap(), t);
        assert_eq!(parse_time("2024-05-01T10:00:00.123456Z").unwrap(), t);
        assert_eq!(
            time_param(parse_time("2024-05-01 10:00:00+00").unwrap()),
            "2024-05-01 10:00:00.000000"
        );
        assert_eq!(
            time_param(parse_time("2024-05-01 10:00:00.5").unwrap()),
            "2024-05-01 10:00:00.500000"
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01 00:00:00",
            "2024-05-01 10:00:00.x",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_null_text_is_absent() {
        assert_eq!(json_or_none(Some("null".into())), None);
        assert_eq!(json_or_none(None), None);
        assert_eq!(json_or_none(Some("{}".into())), Some("{}".into()));
    }
}
