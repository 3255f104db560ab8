//! A `/metrics` exposition (Prometheus text format 0.0.4 or OpenMetrics text) read with the
//! `prometheus-parse` crate, with value lookups by metric name and a subset of labels; and
//! promtool's lint of an exposition.
//!
//! `prometheus-parse` reads label values as written between the quotes: it undoes no escapes and
//! splits at every `,` and `=`, and it skips lines it cannot read. So that a test never gets a
//! wrong or missing value silently, [`Scrape::parse`] refuses, naming the line, any sample line
//! outside what it reads correctly: a value with `\`, `,`, `=` or `}`, an empty `{}`, or a
//! sample it would skip. The daemon's label values (server, method, tool names, reasons) need
//! none of those; a test that does would get that error.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use prometheus_parse::LineInfo;

use super::processes::kill_pid;
use super::tools::{Tool, require};

/// One sample line of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written on the line (with `_total`, `_bucket`, ... suffixes).
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// The value; `+Inf`, `-Inf` and `NaN` included.
    pub value: f64,
}

/// A parsed `/metrics` response.
#[derive(Debug, Clone)]
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses exposition text; `Err` names the first line that does not parse (or that
    /// `prometheus-parse` would read wrongly, see the module documentation).
    pub fn parse(text: &str) -> Result<Scrape, String> {
        for (i, line) in text.lines().enumerate() {
            check_line(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
        }
        // Sample lines only: without `# TYPE` lines prometheus-parse keeps every sample as it
        // is written (histogram buckets are not grouped), in order.
        let sample_lines = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .map(|line| Ok(line.to_string()));
        let parsed = prometheus_parse::Scrape::parse(sample_lines)
            .map_err(|e| format!("prometheus-parse: {e}"))?;
        let samples = parsed
            .samples
            .into_iter()
            .map(|sample| match sample.value {
                prometheus_parse::Value::Untyped(value)
                | prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value) => Ok(Sample {
                    name: sample.metric,
                    labels: sample
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    value,
                }),
                other => Err(format!(
                    "{}: unexpected grouped value {other:?}",
                    sample.metric
                )),
            })
            .collect::<Result<Vec<Sample>, String>>()?;
        Ok(Scrape {
            text: text.to_string(),
            samples,
        })
    }

    /// The raw text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// All samples in order.
    pub fn all(&self) -> &[Sample] {
        &self.samples
    }

    /// Value of the one sample named `name` whose labels include all of `labels` (others are
    /// ignored). `None` if no sample matches; panics if more than one does, since the test
    /// then asks an ambiguous question (add labels, or use [`Scrape::samples`]).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self.matching(name, labels).collect();
        match matching.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!(
                "Scrape::value({name}, {labels:?}) is ambiguous: {} samples match: {:?}",
                many.len(),
                many.iter().map(|s| &s.labels).collect::<Vec<_>>()
            ),
        }
    }

    /// Sum of the samples named `name` whose labels include all of `labels`; 0 when none does.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples named `name` whose labels include all of `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    /// Every sample named `name`: (labels, value).
    pub fn samples(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }

    /// True if at least one sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

/// `Err` for a line `prometheus-parse` would skip or read wrongly.
fn check_line(line: &str) -> Result<(), String> {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(());
    }
    let LineInfo::Sample {
        metric_name,
        labels,
        value,
        ..
    } = LineInfo::parse(line)
    else {
        return Err("not a sample line".into());
    };
    if metric_name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("bad metric name {metric_name:?}"));
    }
    let parses = value.eq_ignore_ascii_case("nan") || value.parse::<f64>().is_ok();
    if !parses {
        return Err(format!("bad sample value {value:?}"));
    }
    let mut seen = Vec::new();
    for pair in labels.unwrap_or_default().split(',') {
        if pair.is_empty() {
            continue; // a trailing comma
        }
        let (name, quoted) = pair
            .split_once('=')
            .ok_or_else(|| format!("label {pair:?} has no `=`"))?;
        let valid_name = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            return Err(format!("bad label name {name:?}"));
        }
        let inner = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .ok_or_else(|| format!("value of label {name} is not one quoted string"))?;
        if inner.contains(['"', '\\', '=']) {
            return Err(format!(
                "value of label {name} holds an escape, `,`, `=` or `}}`, which \
                 prometheus-parse does not read correctly"
            ));
        }
        if seen.contains(&name) {
            return Err(format!("duplicate label {name}"));
        }
        seen.push(name);
    }
    Ok(())
}

/// Runs `promtool check metrics` on `text` (stdin), bounded to 30 s.
///
/// `Err` carries promtool's complaints. promtool goes through [`require`]: missing, it fails
/// the test when tools are required, else the check is skipped (`Ok`) with a printed line.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let Some(promtool) = require(Tool::Promtool) else {
        return Ok(());
    };
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", promtool.display()))?;
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        let text = text.to_string();
        // A writer thread, so a promtool that stops reading cannot block the test.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("waiting for promtool: {e}")),
        Err(_) => {
            kill_pid(pid, libc::SIGKILL);
            return Err("promtool check metrics did not finish within 30 s".into());
        }
    };
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP mcp_up Whether the last probe succeeded.
# TYPE mcp_up gauge
mcp_up{server="everything",transport="stdio"} 1
mcp_up{server="py",transport="http"} 0
# HELP mcp_probes Probes run.
# TYPE mcp_probes counter
mcp_probes_total{server="everything",result="success"} 41 1700000000000
mcp_probes_total{server="everything",result="failure"} 1
mcp_probes_total{server="py",result="success",} 7
# TYPE mcp_probe_duration_seconds histogram
mcp_probe_duration_seconds_bucket{server="everything",le="0.1"} 3
mcp_probe_duration_seconds_bucket{server="everything",le="+Inf"} 4
mcp_probe_duration_seconds_sum{server="everything"} 0.25
mcp_probe_duration_seconds_count{server="everything"} 4
odd_labels{path="/var/lib/mcp exporter (1)",url="http://127.0.0.1:9/mcp"} 1.5e3
special{kind="nan"} NaN
special{kind="neg"} -Inf
special{kind="pos"} +Inf
no_labels 42

# EOF
"#;

    fn sample() -> Scrape {
        Scrape::parse(SAMPLE).expect("sample text parses")
    }

    #[test]
    fn parser_reads_values_with_label_subsets() {
        let s = sample();
        assert_eq!(s.value("mcp_up", &[("server", "everything")]), Some(1.0));
        assert_eq!(
            s.value("mcp_up", &[("server", "py"), ("transport", "http")]),
            Some(0.0)
        );
        assert_eq!(s.value("mcp_up", &[("server", "nope")]), None);
        assert_eq!(
            s.value("mcp_up", &[("server", "py"), ("transport", "stdio")]),
            None
        );
        assert_eq!(s.value("no_labels", &[]), Some(42.0));
        assert_eq!(
            s.value("mcp_probes_total", &[("server", "py")]),
            Some(7.0),
            "trailing comma in labels"
        );
    }

    #[test]
    fn parser_lists_samples_in_order_with_buckets_as_written() {
        let s = sample();
        let ups = s.samples("mcp_up");
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].0.get("transport").map(String::as_str), Some("stdio"));
        assert!(s.has("mcp_probe_duration_seconds_bucket"));
        assert!(!s.has("mcp_probe_duration_seconds"));
        assert_eq!(s.all().len(), 14);
        let (labels, value) = s.samples("odd_labels").remove(0);
        assert_eq!(labels["path"], "/var/lib/mcp exporter (1)");
        assert_eq!(labels["url"], "http://127.0.0.1:9/mcp");
        assert_eq!(value, 1500.0);
    }

    #[test]
    fn parser_handles_special_values_and_timestamps() {
        let s = sample();
        assert!(
            s.value("special", &[("kind", "nan")])
                .is_some_and(f64::is_nan)
        );
        assert_eq!(
            s.value("special", &[("kind", "neg")]),
            Some(f64::NEG_INFINITY)
        );
        assert_eq!(s.value("special", &[("kind", "pos")]), Some(f64::INFINITY));
        assert_eq!(
            s.value(
                "mcp_probe_duration_seconds_bucket",
                &[("server", "everything"), ("le", "+Inf")]
            ),
            Some(4.0)
        );
        assert_eq!(
            s.value(
                "mcp_probes_total",
                &[("server", "everything"), ("result", "success")]
            ),
            Some(41.0),
            "timestamp is not the value"
        );
        assert_eq!(s.text(), SAMPLE);
    }

    #[test]
    #[should_panic(expected = "ambiguous")]
    fn parser_value_panics_when_ambiguous() {
        sample().value("mcp_up", &[]);
    }

    #[test]
    fn parser_rejects_malformed_lines() {
        for bad in [
            "metric{a=\"b\" 1",
            "metric{a=b} 1",
            "metric{a=\"b\"}",
            "metric{a=\"b\"} notanumber",
            "metric{a=\"1\",a=\"2\"} 1",
            "1metric 1",
            "metric{a=\"unterminated} 1",
        ] {
            let err = Scrape::parse(bad).expect_err(bad);
            assert!(err.contains("line 1"), "{bad}: {err}");
        }
    }

    #[test]
    fn parser_refuses_what_prometheus_parse_would_read_wrongly() {
        for beyond in [
            r#"odd{path="C:\\dir"} 1"#,
            r#"odd{quote="say \"hi\""} 1"#,
            r#"odd{nl="a\nb"} 1"#,
            r#"odd{list="a,b"} 1"#,
            r#"odd{eq="a=b"} 1"#,
            r#"odd{brace="}"} 1"#,
            "empty_labels{} 1",
        ] {
            let err = Scrape::parse(beyond).expect_err(beyond);
            assert!(err.contains("line 1"), "{beyond}: {err}");
        }
    }

    #[test]
    fn promtool_accepts_valid_and_rejects_invalid_metrics() {
        if require(Tool::Promtool).is_none() {
            return;
        }
        let valid = "# HELP mcp_up Whether the last probe succeeded.\n# TYPE mcp_up gauge\nmcp_up{server=\"a\"} 1\n";
        promtool_check_metrics(valid).expect("valid text passes promtool");
        let invalid = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n";
        let err = promtool_check_metrics(invalid).expect_err("counter without _total is linted");
        assert!(err.contains("_total"), "{err}");
        let broken = "mcp_up{server=\"a\" 1\n";
        assert!(promtool_check_metrics(broken).is_err());
    }
}
