//! A parser for the Prometheus text exposition format, as far as `rampart top` needs it:
//! sample lines with labels and a float value; comments, timestamps and unknown lines are
//! skipped, never fatal.

/// One sample: metric name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

impl Sample {
    /// The value of label `key`, or "" when absent.
    pub(crate) fn label(&self, key: &str) -> &str {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Every sample in `text` that parses.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after)?;
        labels = parsed;
        rest = remainder;
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP rampart_requests_total Requests answered.
# TYPE rampart_requests_total counter
rampart_requests_total{listener="web",route="api",upstream="app",method="GET",status_class="2xx"} 42
rampart_requests_total{listener="web",route="",upstream="",method="GET",status_class="4xx"} 3
rampart_request_duration_seconds_bucket{route="api",le="0.001"} 1
rampart_request_duration_seconds_bucket{route="api",le="+Inf"} 42
rampart_request_duration_seconds_sum{route="api"} 0.25
weird{a="quote \" and \\ and \n",b="x"} 1.5e3 1700000000000
process_start_time_seconds 1.7e9
broken{a="unterminated
"#;

    #[test]
    fn samples_labels_and_values_parse() {
        let s = parse(SAMPLE);
        assert_eq!(s.len(), 7, "{s:#?}");
        assert_eq!(s[0].name, "rampart_requests_total");
        assert_eq!(s[0].label("route"), "api");
        assert_eq!(s[0].label("status_class"), "2xx");
        assert!((s[0].value - 42.0).abs() < f64::EPSILON);
        assert_eq!(s[1].label("route"), "");
        assert_eq!(s[3].label("le"), "+Inf");
        assert_eq!(s[5].label("a"), "quote \" and \\ and \n");
        assert_eq!(s[5].label("b"), "x");
        assert!((s[5].value - 1500.0).abs() < f64::EPSILON);
        assert!(s[6].labels.is_empty());
        assert!(parse_value("+Inf").is_some_and(f64::is_infinite));
    }
}
