//! JSON text as Python's `json.dumps` writes it, which is how Airflow stores
//! the JSON it receives (`task_state_store.value`, `asset_state_store.value`,
//! SQLAlchemy `JSON` columns such as `hitl_detail.options`): `", "` and `": "`
//! separators, non-ASCII escaped (`ensure_ascii`), floats as Python's `repr`,
//! integers exactly as sent (Python's are unbounded), and a repeated object
//! key kept at its first position with its last value (a Python `dict`).
//!
//! Writing the same bytes Airflow would keeps rows identical whoever wrote them.

/// Rewrites a JSON document (already valid JSON) as `json.dumps(json.loads(text))`.
/// An error names what Python could not represent (a float out of range).
pub(crate) fn dumps(text: &str) -> Result<String, String> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let node = parser.value()?;
    parser.skip_ws();
    if parser.at != parser.bytes.len() {
        return Err("trailing characters after the JSON value".into());
    }
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    write(&node, &mut out)?;
    Ok(out)
}

/// A string as `json.dumps` writes it: quoted, with `ensure_ascii` escapes.
pub(crate) fn dumps_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_str(s, &mut out);
    out
}

/// Python's `repr(float)`: the shortest digits that round-trip, in exponent
/// form when the decimal point falls outside `-4 < decpt <= 16`.
pub(crate) fn float_repr(x: f64) -> Option<String> {
    if !x.is_finite() {
        return None;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d[.ddd]e[-]N`.
    let sci = format!("{x:e}");
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exponent) = sci.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exponent + 1;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', decpt - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    Some(out)
}

enum Node<'a> {
    Null,
    Bool(bool),
    Int(&'a str),
    Float(&'a str),
    Str(String),
    Array(Vec<Node<'a>>),
    Object(Vec<(String, Node<'a>)>),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_ws();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, node: Node<'a>) -> Result<Node<'a>, String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(node)
        } else {
            Err(format!("invalid JSON at byte {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Node<'a>, String> {
        self.skip_ws();
        match self.bytes.get(self.at) {
            None => Err("unexpected end of JSON".into()),
            Some(b'n') => self.literal("null", Node::Null),
            Some(b't') => self.literal("true", Node::Bool(true)),
            Some(b'f') => self.literal("false", Node::Bool(false)),
            Some(b'"') => self.string().map(Node::Str),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Node::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b']') {
                        return Ok(Node::Array(items));
                    }
                    return Err(format!("expected `,` or `]` at byte {}", self.at));
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut entries: Vec<(String, Node<'a>)> = Vec::new();
                if self.eat(b'}') {
                    return Ok(Node::Object(entries));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return Err(format!("expected `:` at byte {}", self.at));
                    }
                    let value = self.value()?;
                    match entries.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = value,
                        None => entries.push((key, value)),
                    }
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(b'}') {
                        return Ok(Node::Object(entries));
                    }
                    return Err(format!("expected `,` or `}}` at byte {}", self.at));
                }
            }
            Some(_) => self.number(),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.at;
        if self.bytes.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at byte {start}"));
        }
        self.at += 1;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    let token = self.text.get(start..self.at).ok_or("bad string")?;
                    return serde_json::from_str(token).map_err(|e| e.to_string());
                }
                _ => self.at += 1,
            }
        }
        Err("unterminated string".into())
    }

    fn number(&mut self) -> Result<Node<'a>, String> {
        let start = self.at;
        let mut float = false;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.at += 1;
        }
        let token = &self.text[start..self.at];
        if token.is_empty() {
            return Err(format!("invalid JSON at byte {start}"));
        }
        Ok(if float {
            Node::Float(token)
        } else {
            Node::Int(token)
        })
    }
}

fn write(node: &Node<'_>, out: &mut String) -> Result<(), String> {
    match node {
        Node::Null => out.push_str("null"),
        Node::Bool(true) => out.push_str("true"),
        Node::Bool(false) => out.push_str("false"),
        Node::Int(token) => {
            if token.trim_start_matches('-').bytes().all(|b| b == b'0') {
                out.push('0');
            } else {
                out.push_str(token);
            }
        }
        Node::Float(token) => {
            let x: f64 = token
                .parse()
                .map_err(|_| format!("`{token}` is not a number"))?;
            let repr =
                float_repr(x).ok_or_else(|| format!("`{token}` is out of a float's range"))?;
            out.push_str(&repr);
        }
        Node::Str(s) => write_str(s, out),
        Node::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out)?;
            }
            out.push(']');
        }
        Node::Object(entries) => {
            out.push('{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(key, out);
                out.push_str(": ");
                write(value, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

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
            ' '..='~' => out.push(c),
            other => {
                let mut units = [0u16; 2];
                for unit in other.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
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
            assert_eq!(float_repr(x).unwrap(), repr);
        }
        assert_eq!(float_repr(f64::NAN), None);
    }
}
