//! JSON as Airflow's Python writes it: an ordered value (Python dicts keep
//! their insertion order, serde_json's map does not) and `json.dumps` text
//! (`", "` and `": "` separators, `ensure_ascii`, Python's float `repr`), the
//! form SQLAlchemy's `JSON` columns and Airflow's `json.dumps` calls store.

use std::fmt::Write as _;

/// A JSON value with its objects' key order kept.
#[derive(Clone, Debug, PartialEq)]
pub enum PyJson {
    /// `null` (Python `None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as Python's `json.dumps` writes it after `json.loads`.
    Number(String),
    /// A string.
    Str(String),
    /// A list.
    Array(Vec<PyJson>),
    /// A dict, in insertion order (a repeated key keeps its first place and last value).
    Object(Vec<(String, PyJson)>),
}

impl PyJson {
    /// Parses JSON text (already validated, e.g. by serde, or written by a database).
    pub(crate) fn parse(text: &str) -> Result<PyJson, String> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            at: 0,
        };
        parser.space();
        let value = parser.value(0)?;
        parser.space();
        if parser.at != parser.bytes.len() {
            return Err(format!("trailing characters at {}", parser.at));
        }
        Ok(value)
    }

    /// From a serde value (whose objects may already have lost their order).
    pub(crate) fn from_value(value: &serde_json::Value) -> PyJson {
        // serde_json's text of a value always parses back.
        PyJson::parse(&value.to_string()).unwrap_or(PyJson::Null)
    }

    /// Python's `json.dumps(value)`.
    pub(crate) fn dumps(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            PyJson::Null => out.push_str("null"),
            PyJson::Bool(true) => out.push_str("true"),
            PyJson::Bool(false) => out.push_str("false"),
            PyJson::Number(n) => out.push_str(n),
            PyJson::Str(s) => write_str(s, out),
            PyJson::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            PyJson::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(key, out);
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Sets `key` (Python's `d[key] = value`: an existing key keeps its place).
    pub(crate) fn insert(&mut self, key: &str, value: PyJson) {
        if let PyJson::Object(entries) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key.to_owned(), value)),
            }
        }
    }
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Python's `repr` writes it (shortest round trip; exponent form
/// below 1e-4 and from 1e16; `Infinity`/`NaN` as `json.dumps` writes them).
pub(crate) fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{v}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Nesting deeper than this is refused (Python's own limit is about 1000).
const MAX_DEPTH: usize = 512;

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", byte as char, self.at))
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyJson, String> {
        if depth > MAX_DEPTH {
            return Err("JSON nested too deeply".into());
        }
        self.space();
        match self.bytes.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut entries: Vec<(String, PyJson)> = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b'}') {
                    self.at += 1;
                    return Ok(PyJson::Object(entries));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    self.expect(b':')?;
                    let value = self.value(depth + 1)?;
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = value,
                        None => entries.push((key, value)),
                    }
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(PyJson::Object(entries));
                        }
                        _ => return Err(format!("expected `,` or `}}` at {}", self.at)),
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.bytes.get(self.at) == Some(&b']') {
                    self.at += 1;
                    return Ok(PyJson::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.bytes.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(PyJson::Array(items));
                        }
                        _ => return Err(format!("expected `,` or `]` at {}", self.at)),
                    }
                }
            }
            Some(b'"') => self.string().map(PyJson::Str),
            Some(b't') => self.literal("true", PyJson::Bool(true)),
            Some(b'f') => self.literal("false", PyJson::Bool(false)),
            Some(b'n') => self.literal("null", PyJson::Null),
            Some(b'N') => self.literal("NaN", PyJson::Number("NaN".into())),
            Some(b'I') => self.literal("Infinity", PyJson::Number("Infinity".into())),
            Some(_) => self.number(),
            None => Err("unexpected end of JSON".into()),
        }
    }

    fn literal(&mut self, word: &str, value: PyJson) -> Result<PyJson, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("unexpected token at {}", self.at))
        }
    }

    fn number(&mut self) -> Result<PyJson, String> {
        let start = self.at;
        if self.bytes[self.at..].starts_with(b"-Infinity") {
            self.at += "-Infinity".len();
            return Ok(PyJson::Number("-Infinity".into()));
        }
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).map_err(|e| e.to_string())?;
        if text.is_empty() {
            return Err(format!("unexpected character at {start}"));
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            // Python ints are exact: the digits as written (without a `-0` sign).
            return Ok(PyJson::Number(if text == "-0" {
                "0".into()
            } else {
                text.to_owned()
            }));
        }
        let v: f64 = text
            .parse()
            .map_err(|_| format!("bad number `{text}` at {start}"))?;
        Ok(PyJson::Number(python_float(v)))
    }

    fn string(&mut self) -> Result<String, String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.at));
        }
        let start = self.at;
        self.at += 1;
        // Find the closing quote, then let serde_json decode the escapes.
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    let raw = std::str::from_utf8(&self.bytes[start..self.at])
                        .map_err(|e| e.to_string())?;
                    return serde_json::from_str(raw).map_err(|e| e.to_string());
                }
                _ => self.at += 1,
            }
        }
        Err("unterminated string".into())
    }
}

/// Rewrites a JSON document (already valid JSON) as `json.dumps(json.loads(text))`.
/// An error names what Python could not represent (a float out of range).
pub(crate) fn dumps(text: &str) -> Result<String, String> {
    let value = PyJson::parse(text)?;
    if value.has_non_finite() {
        return Err("a number is out of the range of a Python float".into());
    }
    Ok(value.dumps())
}

/// A string as `json.dumps` writes it: quoted, with `ensure_ascii` escapes.
pub(crate) fn dumps_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(s, &mut out);
    out
}

impl PyJson {
    /// Whether a number in it reads as a float Python's JSON writes as
    /// `Infinity`, `-Infinity` or `NaN`.
    fn has_non_finite(&self) -> bool {
        match self {
            PyJson::Number(n) => matches!(n.as_str(), "Infinity" | "-Infinity" | "NaN"),
            PyJson::Array(items) => items.iter().any(PyJson::has_non_finite),
            PyJson::Object(entries) => entries.iter().any(|(_, v)| v.has_non_finite()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_like_python() {
        let text = r#"{"z": 1, "a":[1.50,2e16,1E-5,0.0001,-0, "é\n\u0001"],"n":null,"t":true,"big":123456789012345678901234567890}"#;
        assert_eq!(
            PyJson::parse(text).unwrap().dumps(),
            r#"{"z": 1, "a": [1.5, 2e+16, 1e-05, 0.0001, 0, "\u00e9\n\u0001"], "n": null, "t": true, "big": 123456789012345678901234567890}"#
        );
        assert_eq!(PyJson::parse("{}").unwrap().dumps(), "{}");
        assert_eq!(python_float(1767323045.123456), "1767323045.123456");
        assert_eq!(python_float(3.0), "3.0");
        assert_eq!(python_float(1e15), "1000000000000000.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(
            PyJson::parse("\"\u{1F600}\"").unwrap().dumps(),
            r#""\ud83d\ude00""#
        );
        assert!(PyJson::parse("[1,").is_err());
        assert!(PyJson::parse("{} x").is_err());
    }

    #[test]
    fn insert_keeps_order() {
        let mut v = PyJson::parse(r#"{"b": 1, "a": 2}"#).unwrap();
        v.insert("a", PyJson::Null);
        v.insert("c", PyJson::Bool(true));
        assert_eq!(v.dumps(), r#"{"b": 1, "a": null, "c": true}"#);
    }
}

#[cfg(test)]
mod dumps_tests {
    use super::*;

    #[test]
    fn documents_are_written_as_python_json_dumps_writes_them() {
        // Expected values are Python 3.11's `json.dumps(json.loads(text))`.
        let cases = [
            (
                r#"{"a":1,"b":[true,null,"x"]}"#,
                r#"{"a": 1, "b": [true, null, "x"]}"#,
            ),
            (r#"{ "z" : 1 , "a" : 2 }"#, r#"{"z": 1, "a": 2}"#),
            (r#"{"k":1,"j":2,"k":3}"#, r#"{"k": 3, "j": 2}"#),
            ("1180591620717411303424", "1180591620717411303424"),
            ("-0", "0"),
            (
                "[1.0, 1e5, 1E-5, 0.1, -0.0, 1e16, 1e15, 123456789.125]",
                "[1.0, 100000.0, 1e-05, 0.1, -0.0, 1e+16, 1000000000000000.0, 123456789.125]",
            ),
            (
                "[0.0001, 1.5e300, 2.5e-300]",
                "[0.0001, 1.5e+300, 2.5e-300]",
            ),
            (
                r#""é\u0000\u007f😀\/""#,
                r#""\u00e9\u0000\u007f\ud83d\ude00/""#,
            ),
            (
                r#""tab\there \"q\" back\\slash\nnl""#,
                r#""tab\there \"q\" back\\slash\nnl""#,
            ),
            ("[]", "[]"),
            ("{}", "{}"),
            ("  \"s\"  ", "\"s\""),
        ];
        for (input, expected) in cases {
            assert_eq!(dumps(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn floats_python_cannot_hold_are_refused() {
        assert!(dumps("1e400").is_err());
        assert!(dumps("[1, -1e999]").is_err());
        assert!(dumps("[1,").is_err());
        assert!(dumps("1 2").is_err());
    }

    #[test]
    fn float_repr_matches_python() {
        for (x, repr) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e22, "1e+22"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (123.456, "123.456"),
            (9007199254740993.0, "9007199254740992.0"),
            (0.001, "0.001"),
        ] {
            assert_eq!(python_float(x), repr);
        }
        assert_eq!(python_float(f64::NAN), "NaN");
    }
}
