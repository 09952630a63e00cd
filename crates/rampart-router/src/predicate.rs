//! Header and query-parameter predicates, and allocation-free parsing of the raw query.

use std::fmt::{self, Write as _};

use http::{HeaderMap, HeaderName};
use regex::Regex;

/// What a header or query predicate requires of the value(s) with its name.
#[derive(Debug, Clone)]
pub(crate) enum ValueTest {
    /// Some value equals this, byte for byte.
    Equals(String),
    /// Some value (as UTF-8 text) matches this expression.
    Regex(Regex),
    /// The name occurs, with any value.
    Present,
    /// The name does not occur.
    Absent,
}

impl ValueTest {
    /// Builds the test from the config forms (`value`, `regex`, `present`).
    pub(crate) fn from_config(
        value: Option<&String>,
        regex: Option<&rampart_config::Pattern>,
        present: bool,
    ) -> Result<Self, String> {
        match (value, regex, present) {
            (Some(_), Some(_), _) => Err("give either `value` or `regex`, not both".to_owned()),
            (Some(_), None, false) | (None, Some(_), false) => {
                Err("`present = false` cannot be combined with `value` or `regex`".to_owned())
            }
            (Some(v), None, true) => Ok(Self::Equals(v.clone())),
            (None, Some(r), true) => Ok(Self::Regex(r.regex().clone())),
            (None, None, true) => Ok(Self::Present),
            (None, None, false) => Ok(Self::Absent),
        }
    }

    /// Whether one value satisfies an `Equals` / `Regex` / `Present` test.
    fn accepts(&self, value: &[u8]) -> bool {
        match self {
            Self::Equals(expected) => value == expected.as_bytes(),
            Self::Regex(re) => std::str::from_utf8(value).is_ok_and(|v| re.is_match(v)),
            Self::Present => true,
            Self::Absent => false,
        }
    }

    /// Applies the test to the values found under one name.
    fn holds<'v>(&self, mut values: impl Iterator<Item = &'v [u8]>) -> bool {
        match self {
            Self::Absent => values.next().is_none(),
            _ => values.any(|v| self.accepts(v)),
        }
    }

    /// A canonical form for detecting identical routes.
    pub(crate) fn signature(&self) -> String {
        match self {
            Self::Equals(v) => format!("= {v}"),
            Self::Regex(r) => format!("~ {}", r.as_str()),
            Self::Present => "present".to_owned(),
            Self::Absent => "absent".to_owned(),
        }
    }

    /// Why `values` (found under `what`, e.g. `header x-env`) fail the test, for `explain`.
    fn explain_failure(&self, what: &str, values: &[Vec<u8>]) -> String {
        let got = || {
            let mut s = String::new();
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                match std::str::from_utf8(v) {
                    Ok(text) => {
                        let _ = write!(s, "{text:?}");
                    }
                    Err(_) => s.push_str("<non-UTF-8 value>"),
                }
            }
            s
        };
        match self {
            Self::Absent => format!("{what}: expected absent, got {}", got()),
            _ if values.is_empty() => format!("{what} absent"),
            Self::Equals(expected) => format!("{what}: expected {expected:?}, got {}", got()),
            Self::Regex(re) => format!(
                "{what}: expected a match for /{}/, got {}",
                re.as_str(),
                got()
            ),
            Self::Present => format!("{what} absent"),
        }
    }
}

impl fmt::Display for ValueTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(v) => write!(f, "= {v:?}"),
            Self::Regex(r) => write!(f, "~ /{}/", r.as_str()),
            Self::Present => f.write_str("present"),
            Self::Absent => f.write_str("absent"),
        }
    }
}

/// A header predicate: name (case-insensitive) and test. Any of several values may satisfy it.
#[derive(Debug, Clone)]
pub(crate) struct HeaderPred {
    pub(crate) name: HeaderName,
    pub(crate) test: ValueTest,
}

impl HeaderPred {
    /// Whether `headers` satisfy the predicate. No allocation.
    pub(crate) fn holds(&self, headers: &HeaderMap) -> bool {
        self.test.holds(
            headers
                .get_all(&self.name)
                .iter()
                .map(http::HeaderValue::as_bytes),
        )
    }

    /// Why `headers` fail the predicate.
    pub(crate) fn explain_failure(&self, headers: &HeaderMap) -> String {
        let values: Vec<Vec<u8>> = headers
            .get_all(&self.name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect();
        self.test
            .explain_failure(&format!("header {}", self.name), &values)
    }
}

/// A query-parameter predicate: name (case-sensitive, after decoding) and test.
#[derive(Debug, Clone)]
pub(crate) struct QueryPred {
    pub(crate) name: String,
    pub(crate) test: ValueTest,
}

/// Decoded values up to this size are decoded on the stack; longer ones allocate.
const STACK_VALUE: usize = 512;

impl QueryPred {
    /// Whether the raw query (without `?`) satisfies the predicate.
    pub(crate) fn holds(&self, query: Option<&str>) -> bool {
        let mut params =
            query_pairs(query.unwrap_or("")).filter(|(n, _)| decoded_eq(n, &self.name));
        match &self.test {
            ValueTest::Absent => params.next().is_none(),
            ValueTest::Present => params.next().is_some(),
            ValueTest::Equals(expected) => params.any(|(_, v)| decoded_eq(v, expected)),
            ValueTest::Regex(_) => params.any(|(_, raw)| {
                if !raw.bytes().any(|b| b == b'%' || b == b'+') {
                    return self.test.accepts(raw.as_bytes());
                }
                let mut buf = [0u8; STACK_VALUE];
                if raw.len() <= STACK_VALUE {
                    let n = decode_into(raw, &mut buf);
                    self.test.accepts(&buf[..n])
                } else {
                    self.test.accepts(&decode(raw))
                }
            }),
        }
    }

    /// Why the query fails the predicate.
    pub(crate) fn explain_failure(&self, query: Option<&str>) -> String {
        let values: Vec<Vec<u8>> = query_pairs(query.unwrap_or(""))
            .filter(|(n, _)| decoded_eq(n, &self.name))
            .map(|(_, v)| decode(v))
            .collect();
        self.test
            .explain_failure(&format!("query {}", self.name), &values)
    }
}

/// The `name=value` pairs of a raw query, undecoded; empty pieces are skipped and a piece
/// without `=` has the empty value.
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Form-decodes `raw`: `%XX` becomes the byte, `+` a space; a `%` not followed by two hex
/// digits stays as it is.
fn decoded_bytes(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let bytes = raw.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        i += 1;
        Some(match b {
            b'+' => b' ',
            b'%' => match (bytes.get(i).and_then(hex), bytes.get(i + 1).and_then(hex)) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    hi << 4 | lo
                }
                _ => b'%',
            },
            _ => b,
        })
    })
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `raw`, decoded, equals `expected`. No allocation.
fn decoded_eq(raw: &str, expected: &str) -> bool {
    if raw.len() < expected.len() {
        return false; // decoding never makes text longer
    }
    let mut decoded = decoded_bytes(raw);
    expected.bytes().all(|e| decoded.next() == Some(e)) && decoded.next().is_none()
}

/// Decodes `raw` into `buf` (which must be at least `raw.len()` long); returns the length.
fn decode_into(raw: &str, buf: &mut [u8]) -> usize {
    let mut n = 0;
    for (slot, b) in buf.iter_mut().zip(decoded_bytes(raw)) {
        *slot = b;
        n += 1;
    }
    n
}

/// Decodes `raw` into a new vector.
fn decode(raw: &str) -> Vec<u8> {
    decoded_bytes(raw).collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn q(name: &str, test: ValueTest) -> QueryPred {
        QueryPred {
            name: name.to_owned(),
            test,
        }
    }

    fn h(name: &str, test: ValueTest) -> HeaderPred {
        HeaderPred {
            name: HeaderName::from_bytes(name.as_bytes()).unwrap(),
            test,
        }
    }

    fn re(s: &str) -> ValueTest {
        ValueTest::Regex(Regex::new(s).unwrap())
    }

    fn eq(s: &str) -> ValueTest {
        ValueTest::Equals(s.to_owned())
    }

    #[test]
    fn query_values_are_percent_and_plus_decoded() {
        assert!(q("q", eq("a b/c")).holds(Some("q=a+b%2Fc")));
        assert!(q("q", eq("a b/c")).holds(Some("q=a%20b%2fc")));
        assert!(!q("q", eq("a+b")).holds(Some("q=a+b")));
        assert!(q("q", eq("a+b")).holds(Some("q=a%2Bb")));
        assert!(q("q", re("^é$")).holds(Some("q=%C3%A9")));
        assert!(q("q", re("^a b$")).holds(Some("q=a+b")));
    }

    #[test]
    fn query_names_are_decoded_and_case_sensitive() {
        assert!(q("user id", ValueTest::Present).holds(Some("user%20id=1")));
        assert!(q("user id", ValueTest::Present).holds(Some("user+id=1")));
        assert!(!q("Debug", ValueTest::Present).holds(Some("debug=1")));
    }

    #[test]
    fn malformed_percent_escapes_stay_literal() {
        assert!(q("q", eq("100%")).holds(Some("q=100%")));
        assert!(q("q", eq("%zz")).holds(Some("q=%zz")));
        assert!(q("q", eq("%4")).holds(Some("q=%4")));
    }

    #[test]
    fn params_without_equals_or_with_empty_value_have_the_empty_value() {
        assert!(q("debug", eq("")).holds(Some("debug")));
        assert!(q("debug", eq("")).holds(Some("a=1&debug=&b=2")));
        assert!(q("debug", ValueTest::Present).holds(Some("debug")));
        assert!(!q("debug", eq("1")).holds(Some("debug")));
        assert!(q("a", eq("1")).holds(Some("&&a=1&")));
    }

    #[test]
    fn any_repeated_query_param_may_satisfy_and_absent_means_no_occurrence() {
        assert!(q("tag", eq("b")).holds(Some("tag=a&tag=b")));
        assert!(q("debug", ValueTest::Absent).holds(Some("a=1")));
        assert!(q("debug", ValueTest::Absent).holds(None));
        assert!(!q("debug", ValueTest::Absent).holds(Some("debug")));
        assert!(!q("debug", ValueTest::Present).holds(None));
    }

    #[test]
    fn query_regex_decodes_long_values_too() {
        let long = format!("q={}%21", "x".repeat(STACK_VALUE + 10));
        assert!(q("q", re("x!$")).holds(Some(&long)));
        assert!(!q("q", re("x%21$")).holds(Some(&long)));
    }

    #[test]
    fn query_regex_on_non_utf8_decoded_value_never_matches() {
        assert!(!q("q", re(".*")).holds(Some("q=%FF")));
        assert!(q("q", ValueTest::Present).holds(Some("q=%FF")));
    }

    #[test]
    fn header_exact_value_compares_bytes_and_names_ignore_case() {
        let mut headers = HeaderMap::new();
        headers.insert("X-Env", HeaderValue::from_static("prod"));
        assert!(h("x-env", eq("prod")).holds(&headers));
        assert!(h("X-ENV", eq("prod")).holds(&headers));
        assert!(!h("x-env", eq("Prod")).holds(&headers));
        assert!(!h("x-env", eq("prod ")).holds(&headers));
    }

    #[test]
    fn any_of_several_header_values_may_satisfy() {
        let mut headers = HeaderMap::new();
        headers.append("x-tag", HeaderValue::from_static("a"));
        headers.append("x-tag", HeaderValue::from_static("b"));
        assert!(h("x-tag", eq("b")).holds(&headers));
        assert!(h("x-tag", re("^a$")).holds(&headers));
        assert!(!h("x-tag", eq("c")).holds(&headers));
    }

    #[test]
    fn non_utf8_header_values_never_match_a_regex_but_count_as_present() {
        let mut headers = HeaderMap::new();
        headers.insert("x-bin", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        headers.insert("x-utf8", HeaderValue::from_bytes("é".as_bytes()).unwrap());
        assert!(!h("x-bin", re(".*")).holds(&headers));
        assert!(h("x-bin", ValueTest::Present).holds(&headers));
        let lossy = String::from_utf8_lossy(b"\xff\xfe").into_owned();
        assert!(!h("x-bin", ValueTest::Equals(lossy)).holds(&headers));
        // UTF-8 beyond ASCII is matched as text (HeaderValue::to_str would refuse it).
        assert!(h("x-utf8", re("^é$")).holds(&headers));
    }

    #[test]
    fn header_absent_and_present() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static(""));
        assert!(h("x-a", ValueTest::Present).holds(&headers));
        assert!(!h("x-a", ValueTest::Absent).holds(&headers));
        assert!(h("x-b", ValueTest::Absent).holds(&headers));
        assert!(!h("x-b", ValueTest::Present).holds(&headers));
    }

    #[test]
    fn failures_are_explained_with_the_values_seen() {
        let mut headers = HeaderMap::new();
        headers.insert("x-env", HeaderValue::from_static("dev"));
        assert_eq!(
            h("x-env", eq("prod")).explain_failure(&headers),
            "header x-env: expected \"prod\", got \"dev\""
        );
        assert_eq!(
            h("x-other", eq("prod")).explain_failure(&headers),
            "header x-other absent"
        );
        assert_eq!(
            h("x-env", ValueTest::Absent).explain_failure(&headers),
            "header x-env: expected absent, got \"dev\""
        );
        assert_eq!(
            q("v", eq("2")).explain_failure(Some("v=1&v=3")),
            "query v: expected \"2\", got \"1\", \"3\""
        );
        assert_eq!(
            q("v", re("^2$")).explain_failure(Some("v=%FF")),
            "query v: expected a match for /^2$/, got <non-UTF-8 value>"
        );
    }

    #[test]
    fn config_forms_map_to_tests_and_contradictions_are_errors() {
        let v = "x".to_owned();
        let p = rampart_config::Pattern::new("x").unwrap();
        assert!(matches!(
            ValueTest::from_config(Some(&v), None, true),
            Ok(ValueTest::Equals(_))
        ));
        assert!(matches!(
            ValueTest::from_config(None, Some(&p), true),
            Ok(ValueTest::Regex(_))
        ));
        assert!(matches!(
            ValueTest::from_config(None, None, true),
            Ok(ValueTest::Present)
        ));
        assert!(matches!(
            ValueTest::from_config(None, None, false),
            Ok(ValueTest::Absent)
        ));
        assert!(ValueTest::from_config(Some(&v), Some(&p), true).is_err());
        assert!(ValueTest::from_config(Some(&v), None, false).is_err());
    }
}
