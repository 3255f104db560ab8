//! The metric contract of `docs/metrics.md`, held against everything that names a metric:
//!
//! - what the exporter really exposes: one daemon started on `examples/mcp-exporter.toml` (its
//!   HTTP servers running, intervals shortened) plus a few deliberately failing peers, so that
//!   every family has series; every exposed family must be documented with its type, label
//!   names and label values, and every documented family must be exposed;
//! - every metric name literal in `src/`;
//! - every expression of the dashboards, the recording and alerting rules and their promtool
//!   tests;
//! - every alert (severity, `for`, runbook), every runbook file and every dashboard;
//! - every `docs/metrics.md#…`, `docs/probing.md#…` or `README.md#…` reference in the
//!   repository and every relative link of the documentation.
//!
//! Self-contained on purpose (no shared harness): the helpers it needs are below.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;

// ---------------------------------------------------------------------------------------------
// Repository files
// ---------------------------------------------------------------------------------------------

/// The repository root (the crate's manifest directory).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the repository; panics naming it.
fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with one of `extensions`, sorted.
fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "node_modules" && name != "target" {
                    pending.push(path);
                }
            } else if extensions.iter().any(|ext| name.ends_with(ext)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to the repository root, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// docs/metrics.md
// ---------------------------------------------------------------------------------------------

/// A markdown table: header cells and body rows.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The cells of a `| a | b |` line, trimmed.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// Every markdown table of `text` (header line, separator line, rows).
fn tables(text: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let is_table = lines[i].trim_start().starts_with('|')
            && lines
                .get(i + 1)
                .is_some_and(|next| next.trim_start().starts_with("|---"));
        if !is_table {
            i += 1;
            continue;
        }
        let header = cells(lines[i]);
        let mut rows = Vec::new();
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            rows.push(cells(lines[i]));
            i += 1;
        }
        out.push(Table { header, rows });
    }
    out
}

/// The `code` spans of a cell, in order.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// One family row of a metric table.
#[derive(Debug, Clone)]
struct DocFamily {
    kind: String,
    labels: BTreeSet<String>,
    contract: String,
}

/// One row of the alert table.
#[derive(Debug, Clone)]
struct DocAlert {
    severity: String,
    for_: String,
    runbook_cell: String,
}

/// What docs/metrics.md declares.
#[derive(Debug)]
struct MetricsDoc {
    text: String,
    families: BTreeMap<String, DocFamily>,
    /// (family, label) -> allowed values.
    label_values: BTreeMap<(String, String), BTreeSet<String>>,
    recording_rules: BTreeSet<String>,
    alerts: BTreeMap<String, DocAlert>,
    /// (title, uid, file cell).
    dashboards: Vec<(String, String, String)>,
}

impl MetricsDoc {
    fn load() -> MetricsDoc {
        MetricsDoc::parse(&read("docs/metrics.md"))
    }

    fn parse(text: &str) -> MetricsDoc {
        let mut doc = MetricsDoc {
            text: text.to_string(),
            families: BTreeMap::new(),
            label_values: BTreeMap::new(),
            recording_rules: BTreeSet::new(),
            alerts: BTreeMap::new(),
            dashboards: Vec::new(),
        };
        for table in tables(text) {
            let head: Vec<&str> = table.header.iter().map(String::as_str).collect();
            for row in &table.rows {
                let cell = |i: usize| row.get(i).map(String::as_str).unwrap_or("");
                match head.as_slice() {
                    ["family", "type", "labels", "unit", "contract", ..] => {
                        let names = code_spans(cell(0));
                        assert_eq!(names.len(), 1, "docs/metrics.md: family row {row:?}");
                        let family = DocFamily {
                            kind: cell(1).to_string(),
                            labels: code_spans(cell(2)).into_iter().collect(),
                            contract: cell(4).to_string(),
                        };
                        let previous = doc.families.insert(names[0].clone(), family);
                        assert!(
                            previous.is_none(),
                            "docs/metrics.md lists {} twice",
                            names[0]
                        );
                    }
                    ["family", "label", "values"] => {
                        let values: BTreeSet<String> = code_spans(cell(2)).into_iter().collect();
                        for label in code_spans(cell(1)) {
                            for family in code_spans(cell(0)) {
                                doc.label_values
                                    .insert((family, label.clone()), values.clone());
                            }
                        }
                    }
                    ["recording rule", ..] => {
                        doc.recording_rules.extend(code_spans(cell(0)));
                    }
                    ["alert", "severity", "for", ..] => {
                        for name in code_spans(cell(0)) {
                            doc.alerts.insert(
                                name,
                                DocAlert {
                                    severity: cell(1).to_string(),
                                    for_: cell(2).to_string(),
                                    runbook_cell: cell(4).to_string(),
                                },
                            );
                        }
                    }
                    ["dashboard", "uid", "file", ..] => {
                        let uid = code_spans(cell(1)).join("");
                        doc.dashboards
                            .push((cell(0).to_string(), uid, cell(2).to_string()));
                    }
                    _ => {}
                }
            }
        }
        doc
    }

    /// The family a sample or series name belongs to: the name itself, or a documented
    /// histogram's `_bucket` / `_sum` / `_count` series.
    fn family_of(&self, name: &str) -> Option<&str> {
        if let Some((family, _)) = self.families.get_key_value(name) {
            return Some(family);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let (family, doc) = self.families.get_key_value(base)?;
            (doc.kind == "histogram").then_some(family.as_str())
        })
    }

    /// The text of the section whose heading is `heading` (up to the next heading of the same
    /// or a higher level).
    fn section(&self, heading: &str) -> Option<String> {
        let mut lines = self.text.lines();
        let level = lines.by_ref().find_map(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            (hashes > 0 && l[hashes..].trim() == heading).then_some(hashes)
        })?;
        let body: Vec<&str> = lines
            .take_while(|l| {
                let hashes = l.chars().take_while(|c| *c == '#').count();
                hashes == 0 || hashes > level
            })
            .collect();
        Some(body.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// Anchors and links of markdown files
// ---------------------------------------------------------------------------------------------

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a markdown text defines: heading slugs and explicit `<a id="…">`.
fn anchors(text: &str) -> BTreeSet<String> {
    let explicit = Regex::new(r#"<a\s+(?:id|name)="([^"]+)""#).expect("anchor regex");
    let mut out: BTreeSet<String> = explicit
        .captures_iter(text)
        .map(|c| c[1].to_string())
        .collect();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !in_code && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            out.insert(slug(&line[hashes..]));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL
// ---------------------------------------------------------------------------------------------

/// Aggregation operators and keywords: identifiers of PromQL that never name a series.
const PROMQL_WORDS: [&str; 28] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Words after which a parenthesised list holds label names, not expressions.
const LABEL_LIST_WORDS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The series names an expression reads: identifiers that are not functions, keywords,
/// numbers, label names, label values, durations or Grafana variables.
fn promql_names(expr: &str) -> BTreeSet<String> {
    // Blank out string literals, label matchers `{…}` and ranges `[…]`.
    let mut text: Vec<char> = Vec::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth_brace = 0usize;
    let mut depth_bracket = 0usize;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            text.push(' ');
            continue;
        }
        match c {
            '"' | '\'' | '`' => {
                quote = Some(c);
                text.push(' ');
            }
            '{' => {
                depth_brace += 1;
                text.push(' ');
            }
            '}' => {
                depth_brace = depth_brace.saturating_sub(1);
                text.push(' ');
            }
            '[' => {
                depth_bracket += 1;
                text.push(' ');
            }
            ']' => {
                depth_bracket = depth_bracket.saturating_sub(1);
                text.push(' ');
            }
            _ if depth_brace > 0 || depth_bracket > 0 => text.push(' '),
            _ => text.push(c),
        }
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '$';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < text.len() {
        if !is_ident(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_ident(text[i]) {
            i += 1;
        }
        let word: String = text[start..i].iter().collect();
        let mut next = i;
        while next < text.len() && text[next].is_whitespace() {
            next += 1;
        }
        let opens = text.get(next) == Some(&'(');
        if LABEL_LIST_WORDS.contains(&word.as_str()) && opens {
            // Skip the label list up to its closing parenthesis.
            let mut depth = 0usize;
            i = next;
            while i < text.len() {
                match text[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            continue;
        }
        let first = word.chars().next().unwrap_or('0');
        let is_name = !opens
            && !first.is_ascii_digit()
            && first != '$'
            && !PROMQL_WORDS.contains(&word.as_str());
        if is_name {
            names.insert(word);
        }
    }
    names
}

/// The series names of a Grafana variable query: `label_values(<selector>, label)` reads the
/// selector; `label_values(label)` and `metrics(…)` read none; anything else is PromQL.
fn grafana_query_names(query: &str) -> BTreeSet<String> {
    let q = query.trim();
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return match inner.rsplit_once(',') {
            Some((selector, _label)) => promql_names(selector),
            None => BTreeSet::new(),
        };
    }
    if q.starts_with("metrics(") {
        return BTreeSet::new();
    }
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return promql_names(inner);
    }
    promql_names(q)
}

/// The name of a series written as `name{labels}`.
fn series_name(series: &str) -> String {
    series
        .split('{')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Rules, rule tests, dashboards
// ---------------------------------------------------------------------------------------------

fn parse_yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// Every rule (recording and alerting) of the rules file.
fn rules() -> Vec<Yaml> {
    let file = parse_yaml("alerts/mcp-exporter.rules.yml");
    file["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("alerts/mcp-exporter.rules.yml has no groups list"))
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .collect()
}

fn yaml_str<'a>(v: &'a Yaml, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Yaml::as_str)
}

/// The dashboards: (file name, parsed JSON).
fn dashboards() -> Vec<(String, Value)> {
    files_under(&root().join("dashboards"), &[".json"])
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", rel(&path)));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, json)
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut pending: Vec<&Value> = dashboard["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(panel) = pending.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            pending.extend(nested.iter());
        }
        out.push(panel);
    }
    out
}

/// (where, series name) for every name that a dashboard, rule or rule test queries.
fn queried_names() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let at = format!("dashboards/{file}: panel {:?}", panel["title"]);
                    out.extend(promql_names(expr).into_iter().map(|n| (at.clone(), n)));
                }
            }
        }
        for var in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let query = match &var["query"] {
                Value::String(q) => Some(q.as_str()),
                Value::Object(o) => o.get("query").and_then(Value::as_str),
                _ => None,
            };
            if let Some(q) = query.filter(|_| var["type"] == "query") {
                let at = format!("dashboards/{file}: variable {:?}", var["name"]);
                out.extend(grafana_query_names(q).into_iter().map(|n| (at.clone(), n)));
            }
        }
    }
    for rule in rules() {
        let at = format!(
            "alerts/mcp-exporter.rules.yml: {}",
            yaml_str(&rule, "alert")
                .or(yaml_str(&rule, "record"))
                .unwrap_or("?")
        );
        if let Some(expr) = yaml_str(&rule, "expr") {
            out.extend(promql_names(expr).into_iter().map(|n| (at.clone(), n)));
        }
    }
    for path in files_under(&root().join("alerts/tests"), &[".yml", ".yaml"]) {
        let file = rel(&path);
        let tests = parse_yaml(&file);
        for (i, test) in tests["tests"]
            .as_sequence()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{file}: tests[{i}]");
            for input in test["input_series"].as_sequence().into_iter().flatten() {
                if let Some(series) = yaml_str(input, "series") {
                    out.push((at.clone(), series_name(series)));
                }
            }
            for case in test["promql_expr_test"].as_sequence().into_iter().flatten() {
                if let Some(expr) = yaml_str(case, "expr") {
                    out.extend(promql_names(expr).into_iter().map(|n| (at.clone(), n)));
                }
                for sample in case["exp_samples"].as_sequence().into_iter().flatten() {
                    if let Some(labels) = yaml_str(sample, "labels") {
                        out.push((at.clone(), series_name(labels)));
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text format
// ---------------------------------------------------------------------------------------------

/// A parsed `/metrics` body: family types and samples.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>)>,
}

impl Exposition {
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    out.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            out.samples.push(parse_sample(line)?);
        }
        Ok(out)
    }

    /// The family of a sample name: itself, or a histogram's `_bucket` / `_sum` / `_count`.
    fn family_of<'a>(&'a self, sample: &'a str) -> &'a str {
        if self.types.contains_key(sample) {
            return sample;
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix)
                && self.types.get(base).map(String::as_str) == Some("histogram")
            {
                return base;
            }
        }
        sample
    }

    /// Families with at least one sample.
    fn families_with_samples(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|(name, _)| self.family_of(name).to_string())
            .collect()
    }
}

/// `name{k="v",…} value`.
fn parse_sample(line: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    if line[name_end..].starts_with('{') {
        let mut rest = &line[name_end + 1..];
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("bad labels: {line:?}"))?;
            let key = rest[..eq].trim().to_string();
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted label value: {line:?}"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("unterminated label value: {line:?}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("bad escape: {line:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.insert(key, value);
            rest = &rest[end + 1..];
        }
        if rest.split_whitespace().next().is_none() {
            return Err(format!("no value: {line:?}"));
        }
    }
    Ok((name, labels))
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// True when missing tools must fail the test (`CI=true` or `1`) rather than skip it.
fn tools_required() -> bool {
    let ci = std::env::var("CI").unwrap_or_default();
    ci.eq_ignore_ascii_case("true") || ci == "1"
}

/// Finds `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A child in its own process group, its output captured; killed with its group on drop.
struct Guarded {
    name: String,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Guarded {
    fn spawn(name: &str, cmd: &mut Command) -> Guarded {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for mut pipe in pipes.into_iter().flatten() {
            let output = Arc::clone(&output);
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    output
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&text);
                }
            });
        }
        Guarded {
            name: name.to_string(),
            child,
            output,
        }
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's process group; no memory is involved.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    /// Waits up to `limit` for the child to exit.
    fn wait_for_exit(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.exited() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.exited()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
        if !self.wait_for_exit(Duration::from_secs(5)) {
            eprintln!("warning: {} was not reaped after SIGKILL", self.name);
        }
    }
}

/// Starts a server listening on a fresh loopback port (`make(port)`) and waits until it accepts
/// connections; retries with another port when the child exits first (the port was taken).
fn spawn_listening(name: &str, make: impl Fn(u16) -> Command) -> (Guarded, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut guard = Guarded::spawn(name, &mut make(port));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return (guard, port);
            }
            if guard.exited() || Instant::now() >= until {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let exited = guard.exited();
        failures.push(format!("port {port}: {}", guard.output()));
        if !exited {
            break;
        }
    }
    panic!("{name} did not start:\n{}", failures.join("\n---\n"));
}

// ---------------------------------------------------------------------------------------------
// The contract peer: failing and drifting servers the example config does not have
// ---------------------------------------------------------------------------------------------

/// Reads one HTTP request (head and a `Content-Length` body, bounded).
fn read_request(conn: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = conn.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Some((head, body))
}

fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A legacy-era Streamable HTTP server (JSON responses, no session id) whose tool catalog is
/// different at every `tools/list`: schema drift on every probe.
fn drifting_mcp(body: &[u8], listings: &AtomicU64) -> Vec<u8> {
    let Ok(msg) = serde_json::from_slice::<Value>(body) else {
        return http_response("400 Bad Request", &[], b"not JSON");
    };
    let Some(id) = msg.get("id").cloned() else {
        return http_response("202 Accepted", &[], b"");
    };
    let reply = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "contract-drifting", "version": "1.0.0"}}}),
        "ping" => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        "tools/list" => {
            let n = listings.fetch_add(1, Ordering::Relaxed);
            json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                {"name": format!("drift-{n}"), "inputSchema": {"type": "object"}}]}})
        }
        _ => json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": "Method not found"}}),
    };
    http_response(
        "200 OK",
        &[("Content-Type", "application/json")],
        reply.to_string().as_bytes(),
    )
}

/// Answers one request of the contract peer on `conn`: `POST /drifting` (see
/// [`drifting_mcp`]), `POST /locked` (an MCP endpoint that always answers 401 with a challenge:
/// auth failure, security event, remediation) and `GET /api` (an API announcing its rate limit).
fn answer_peer(conn: &mut (impl Read + Write), listings: &AtomicU64) {
    let Some((head, body)) = read_request(conn) else {
        return;
    };
    let mut request_line = head.split_whitespace();
    let reply = match (request_line.next(), request_line.next()) {
        (Some("POST"), Some("/drifting")) => drifting_mcp(&body, listings),
        (Some("POST"), Some("/locked")) => http_response(
            "401 Unauthorized",
            &[("WWW-Authenticate", "Bearer error=\"invalid_token\"")],
            b"",
        ),
        (Some("GET"), Some("/api")) => http_response(
            "200 OK",
            &[
                ("X-RateLimit-Remaining", "42"),
                ("Content-Type", "text/plain"),
            ],
            b"ok",
        ),
        _ => http_response("404 Not Found", &[], b""),
    };
    let _ = conn.write_all(&reply);
    let _ = conn.flush();
}

/// Serves the contract peer ([`answer_peer`]) on one loopback port until the test ends.
fn start_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind peer: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("peer address: {e}"))
        .port();
    let listings = Arc::new(AtomicU64::new(0));
    thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let listings = Arc::clone(&listings);
            thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                answer_peer(&mut conn, &listings);
            });
        }
    });
    port
}

/// The contract peer over https: a CA made here signs a leaf for 127.0.0.1; the CA's PEM is
/// written to `ca_file`. Certificate, TLS version and the credential families get series from
/// it.
fn start_tls_peer(ca_file: &Path) -> u16 {
    let ca_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap_or_else(|e| panic!("CA parameters: {e}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
        .unwrap_or_else(|e| panic!("CA: {e}"));
    std::fs::write(ca_file, ca.pem()).unwrap_or_else(|e| panic!("write the CA: {e}"));
    let leaf_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("leaf key: {e}"));
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .and_then(|params| params.signed_by(&leaf_key, &ca))
        .unwrap_or_else(|e| panic!("leaf: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth().with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
        })
        .unwrap_or_else(|e| panic!("TLS server config: {e}"));
    let config = Arc::new(config);
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind TLS peer: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("TLS peer address: {e}"))
        .port();
    let listings = Arc::new(AtomicU64::new(0));
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let listings = Arc::clone(&listings);
            let config = Arc::clone(&config);
            thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(session) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut stream = rustls::StreamOwned::new(session, conn);
                answer_peer(&mut stream, &listings);
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    port
}

// ---------------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------------

/// Replaces `from` by `to` in `text`; panics when `from` is not there, so a change of the
/// example configuration shows up here instead of silently testing something else.
fn replace_required(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "examples/mcp-exporter.toml no longer contains {from:?}; adapt tests/metrics_contract.rs"
    );
    text.replace(from, to)
}

/// The example configuration, runnable from a temp directory: absolute server paths, the HTTP
/// servers on the ports they got, the memory server's file in the temp directory, every
/// interval 1 s; plus the contract peer's servers and API.
fn contract_config(
    dir: &Path,
    http_port: u16,
    py_port: u16,
    peer_port: u16,
    tls_port: u16,
    pg_dsn: &str,
) -> String {
    let example = read("examples/mcp-exporter.toml");
    let root = root().display().to_string();
    let text = replace_required(
        &example,
        "\"mcp-servers/",
        &format!("\"{root}/mcp-servers/"),
    );
    let text = replace_required(
        &text,
        "http://127.0.0.1:3001/mcp",
        &format!("http://127.0.0.1:{http_port}/mcp"),
    );
    let text = replace_required(
        &text,
        "http://127.0.0.1:3002/mcp",
        &format!("http://127.0.0.1:{py_port}/mcp"),
    );
    let text = replace_required(
        &text,
        "/tmp/mcp-exporter-demo-memory.jsonl",
        &dir.join("memory.jsonl").display().to_string(),
    );
    let interval = Regex::new(r#"(?m)^(\s*)interval = "[^"]*""#).expect("interval regex");
    assert!(interval.is_match(&text), "the example sets no interval");
    let text = interval.replace_all(&text, r#"${1}interval = "1s""#);
    let dsn_file = dir.join("pg-dsn");
    std::fs::write(&dsn_file, pg_dsn)
        .unwrap_or_else(|e| panic!("write {}: {e}", dsn_file.display()));
    let dsn_file = dsn_file.display();
    let lock = dir.join("absent.lock.json").display().to_string();
    format!(
        r#"{text}

# Added by tests/metrics_contract.rs: the families the example alone never fills.
[[servers]]
name = "contract-drifting"
transport = "http"
url = "http://127.0.0.1:{peer_port}/drifting"
interval = "1s"
# A lock that does not exist approves nothing: mcp_tools_unapproved has a series.
tools_lock = "{lock}"
on_mismatch = "record"

[[servers]]
name = "contract-prompts"
transport = "http"
url = "http://127.0.0.1:{http_port}/mcp"
check = "readiness"
interval = "1s"
# server-everything lists prompts and resource templates: mcp_definitions_unapproved has series.
tools_lock = "{lock}"
on_mismatch = "record"

[[servers]]
name = "contract-locked"
transport = "http"
url = "http://127.0.0.1:{peer_port}/locked"
interval = "1s"
remediation = {{ command = ["true"], after = "1s", backoff = "1h" }}

# The prober's OAuth client against the same 401: no metadata (404s), so the 2025-03-26
# fallback asks the origin's /token, which answers 404: mcp_auth_* families get series.
[[servers]]
name = "contract-oauth"
transport = "http"
url = "http://127.0.0.1:{peer_port}/locked"
interval = "1s"
auth = {{ type = "oauth", client_id = "contract" }}

[[dependencies]]
name = "contract-api"
kind = "http"
url = "http://127.0.0.1:{peer_port}/api"
interval = "1s"
critical = false

[[dependencies]]
name = "contract-pg"
kind = "postgres"
dsn_file = "{dsn_file}"
interval = "1s"
critical = false

[[servers]]
name = "contract-tls"
transport = "http"
url = "https://127.0.0.1:{tls_port}/drifting"
interval = "1s"
headers = {{ Authorization = "Bearer {jwt}" }}
tls = {{ ca_file = {ca} }}

[[dependencies]]
name = "contract-tls-api"
kind = "http"
url = "https://127.0.0.1:{tls_port}/api"
interval = "1s"
critical = false
tls = {{ ca_file = {ca} }}

[traffic]
path = "{sock}"
"#,
        sock = dir.join("traffic.sock").display(),
        ca = format!("{:?}", dir.join("contract-ca.pem").display().to_string()),
        jwt = contract_jwt(),
    )
}

/// A JWT whose `exp` is 30 days away, for the credential family (the peer does not check it).
fn contract_jwt() -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 30 * 86_400)
        .unwrap_or(0);
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    )
}

/// A real client's session with the example's stdio `everything` server through
/// `mcp-exporter wrap`, reporting to the daemon's traffic socket in `dir`: initialize and a tool
/// call, then the session stays open (the `sh` guard kills it), so the traffic families fill.
fn wrapped_client(dir: &Path, node: &Path, everything: &Path) -> Guarded {
    let requests = dir.join("client-requests.jsonl");
    std::fs::write(
        &requests,
        concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"contract","version":"1"}}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}"#,
            "\n",
        ),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", requests.display()));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"(cat "$0"; exec sleep 3600) | "$1" wrap --exporter "$2" --report-interval 100ms -- "$3" "$4" stdio"#)
        .arg(&requests)
        .arg(env!("CARGO_BIN_EXE_mcp-exporter"))
        .arg(dir.join("traffic.sock"))
        .arg(node)
        .arg(everything);
    Guarded::spawn("wrapped client", &mut cmd)
}

/// A running `mcp-exporter serve` on a kernel-chosen loopback port.
struct Daemon {
    process: Guarded,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(dir: tempfile::TempDir, config: &str) -> Daemon {
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("write {}: {e}", config_path.display()));
        // A discovery directory holding one file that does not parse, so the discovery
        // families (docs/probing.md#discovery) have their series too.
        let discovery = dir.path().join("discovery");
        std::fs::create_dir_all(&discovery)
            .and_then(|()| std::fs::write(discovery.join("broken.json"), "[{\"targets\": "))
            .unwrap_or_else(|e| panic!("write the discovery directory: {e}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-exporter"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--discovery.dir")
            .arg(&discovery)
            .current_dir(dir.path());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut process = Guarded::spawn("mcp-exporter", &mut cmd);
        let until = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let output = process.output();
            if let Some(addr) = output.lines().find_map(|l| {
                let rest = &l[l.find("listening on http://")? + "listening on http://".len()..];
                let addr: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
                    .collect();
                (!addr.is_empty()).then_some(addr)
            }) {
                break addr;
            }
            assert!(
                !process.exited() && Instant::now() < until,
                "mcp-exporter did not start listening:\n{output}\nconfig:\n{config}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        Daemon {
            process,
            addr,
            _dir: dir,
        }
    }

    /// `GET /metrics` (plain text format, no compression).
    fn scrape(&self) -> String {
        let mut conn = TcpStream::connect(&self.addr)
            .unwrap_or_else(|e| panic!("connect to the daemon at {}: {e}", self.addr));
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        conn.write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("send GET /metrics: {e}"));
        let mut response = Vec::new();
        conn.read_to_end(&mut response)
            .unwrap_or_else(|e| panic!("read /metrics: {e}"));
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "GET /metrics: {head}"
        );
        body.to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM to the daemon alone, so it ends the sessions of its stdio children itself.
        if let Ok(pid) = libc::pid_t::try_from(self.process.child.id()) {
            // SAFETY: kill(2) on our own child; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        self.process.wait_for_exit(Duration::from_secs(10));
        if thread::panicking() {
            eprintln!("--- mcp-exporter output ---\n{}", self.process.output());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// How long the daemon gets to fill every documented family.
const FILL_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn the_exporter_exposes_exactly_the_documented_families() {
    let node = which("node");
    let everything = root()
        .join("mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let python = root().join("mcp-servers/.venv/bin/python");
    if node.is_none() || !everything.is_file() || !python.exists() {
        assert!(
            !tools_required(),
            "node, {} and {} are required (scripts/install-deps.sh)",
            everything.display(),
            python.display()
        );
        eprintln!("SKIP: node or the pinned MCP servers are not installed");
        return;
    }
    let node = node.unwrap_or_default();
    let doc = MetricsDoc::load();
    assert!(
        !doc.families.is_empty(),
        "docs/metrics.md has no family tables"
    );

    let (_http, http_port) = spawn_listening("server-everything streamableHttp", |port| {
        let mut cmd = Command::new(&node);
        cmd.arg("--require")
            .arg(root().join("tests/fixtures/loopback.cjs"))
            .arg(&everything)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .current_dir(root().join("mcp-servers"));
        cmd
    });
    let (_py, py_port) = spawn_listening("py_modern_server http", |port| {
        let mut cmd = Command::new(&python);
        cmd.arg(root().join("tests/fixtures/py_modern_server.py"))
            .args(["http", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(root().join("mcp-servers"));
        cmd
    });
    let peer_port = start_peer();
    // The mcp_dependency_postgres_* families need a real PostgreSQL (with data checksums, so
    // it reports checksum failures).
    let Some(pg) = crate::common::postgres::spawn_postgres_with_checksums() else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("mcp-exporter-contract-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let tls_port = start_tls_peer(&dir.path().join("contract-ca.pem"));
    let config = contract_config(
        dir.path(),
        http_port,
        py_port,
        peer_port,
        tls_port,
        &pg.url("postgres"),
    );
    let client_dir = dir.path().to_path_buf();
    let daemon = Daemon::start(dir, &config);
    let _client = wrapped_client(&client_dir, Path::new("node"), &everything);

    // Wait (bounded) until every documented family has a series.
    let started = Instant::now();
    let exposition = loop {
        let text = daemon.scrape();
        let exposition = Exposition::parse(&text)
            .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
        let present = exposition.families_with_samples();
        let missing: Vec<&String> = doc
            .families
            .keys()
            .filter(|f| !present.contains(*f))
            .collect();
        if missing.is_empty() {
            break exposition;
        }
        assert!(
            started.elapsed() < FILL_TIMEOUT,
            "docs/metrics.md lists families the exporter never exposed within {FILL_TIMEOUT:?} \
             (remove them from the doc, or give this test's config what makes them appear): \
             {missing:?}\n\nlast scrape:\n{text}"
        );
        thread::sleep(Duration::from_millis(250));
    };

    let mut problems = Vec::new();
    for (family, kind) in &exposition.types {
        match doc.families.get(family) {
            None => problems.push(format!(
                "{family} ({kind}) is exposed but not listed in docs/metrics.md"
            )),
            Some(d) if &d.kind != kind => problems.push(format!(
                "{family} is a {kind}, docs/metrics.md says {}",
                d.kind
            )),
            Some(_) => {}
        }
    }
    let mut labels_seen: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, labels) in &exposition.samples {
        let family = exposition.family_of(name);
        let seen = labels_seen.entry(family).or_default();
        for (label, value) in labels {
            if label == "le" && name.ends_with("_bucket") {
                continue;
            }
            seen.insert(label);
            if let Some(allowed) = doc
                .label_values
                .get(&(family.to_string(), label.to_string()))
                && !allowed.contains(value)
            {
                problems.push(format!(
                    "{family}{{{label}={value:?}}}: value not among those docs/metrics.md lists ({allowed:?})"
                ));
            }
        }
    }
    for (family, seen) in &labels_seen {
        if let Some(d) = doc.families.get(*family) {
            let documented: BTreeSet<&str> = d.labels.iter().map(String::as_str).collect();
            if &documented != seen {
                problems.push(format!(
                    "{family} has labels {seen:?}, docs/metrics.md says {documented:?}"
                ));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "docs/metrics.md and /metrics disagree:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_documented_tables_are_well_formed() {
    let doc = MetricsDoc::load();
    let mut problems = Vec::new();
    let name = Regex::new(r"^mcp_[a-z0-9_]+$").expect("name regex");
    for (family, d) in &doc.families {
        if !name.is_match(family) {
            problems.push(format!("{family}: not an mcp_ metric name"));
        }
        if !["gauge", "counter", "histogram"].contains(&d.kind.as_str()) {
            problems.push(format!("{family}: unknown type {:?}", d.kind));
        }
        if d.kind == "counter" && !family.ends_with("_total") {
            problems.push(format!("{family}: a counter is listed with its _total"));
        }
        if !["playbook", "added"].contains(&d.contract.as_str()) {
            problems.push(format!(
                "{family}: contract must be `playbook` or `added`, not {:?}",
                d.contract
            ));
        }
    }
    for ((family, label), values) in &doc.label_values {
        match doc.families.get(family) {
            None => problems.push(format!("label values of unknown family {family}")),
            Some(d) if !d.labels.contains(label) => {
                problems.push(format!("label values of {family}: it has no label {label}"))
            }
            _ if values.is_empty() => problems.push(format!("{family}{{{label}}}: no values")),
            _ => {}
        }
    }
    assert!(
        doc.families.values().any(|d| d.contract == "playbook"),
        "no family is marked as the playbook's contract"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_metric_name_in_the_source_is_documented() {
    let doc = MetricsDoc::load();
    let literal = Regex::new(r#""(mcp_[a-z0-9_]+)""#).expect("literal regex");
    let mut undocumented = BTreeSet::new();
    let mut found = 0;
    for path in files_under(&root().join("src"), &[".rs"]) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for capture in literal.captures_iter(&text) {
            found += 1;
            let name = &capture[1];
            // Counters are registered without the `_total` the exposition adds.
            let documented = doc.family_of(name).is_some()
                || doc.families.contains_key(&format!("{name}_total"));
            if !documented {
                undocumented.insert(format!("{}: \"{name}\"", rel(&path)));
            }
        }
    }
    assert!(found > 0, "no metric name literal found in src/");
    assert!(
        undocumented.is_empty(),
        "metric names in src/ that docs/metrics.md does not list (document the family; if the \
         literal is no metric, do not start it with mcp_):\n{}",
        undocumented.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn rules_dashboards_and_rule_tests_query_only_documented_names() {
    let doc = MetricsDoc::load();
    let recorded: BTreeSet<String> = rules()
        .iter()
        .filter_map(|r| yaml_str(r, "record").map(str::to_string))
        .collect();
    let mut problems = BTreeSet::new();
    let queried = queried_names();
    assert!(queried.len() > 10, "too few names found: {queried:?}");
    for (at, name) in queried {
        if name.contains(':') {
            if !recorded.contains(&name) {
                problems.insert(format!(
                    "{at}: {name} is not a recording rule of the rules file"
                ));
            }
            if !doc.recording_rules.contains(&name) {
                problems.insert(format!(
                    "{at}: recording rule {name} is not in docs/metrics.md"
                ));
            }
        } else if doc.family_of(&name).is_none() {
            problems.insert(format!("{at}: {name} is not listed in docs/metrics.md"));
        }
    }
    for name in doc.recording_rules.symmetric_difference(&recorded) {
        problems.insert(format!(
            "recording rule {name}: in only one of docs/metrics.md and the rules file"
        ));
    }
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_alert_and_runbook_is_documented() {
    let doc = MetricsDoc::load();
    let mut problems = Vec::new();
    let mut alert_names = BTreeSet::new();
    for rule in rules() {
        let Some(alert) = yaml_str(&rule, "alert") else {
            continue;
        };
        alert_names.insert(alert.to_string());
        let Some(row) = doc.alerts.get(alert) else {
            problems.push(format!(
                "{alert} is not in the alert table of docs/metrics.md"
            ));
            continue;
        };
        let severity = rule["labels"]["severity"].as_str().unwrap_or("none");
        if row.severity != severity {
            problems.push(format!(
                "{alert}: severity {severity} in the rules, {:?} in docs/metrics.md",
                row.severity
            ));
        }
        let for_ = yaml_str(&rule, "for").unwrap_or("—");
        if row.for_ != for_ {
            problems.push(format!(
                "{alert}: `for` {for_} in the rules, {:?} in docs/metrics.md",
                row.for_
            ));
        }
        let runbook_url = rule["annotations"]["runbook_url"].as_str().unwrap_or("");
        let documented = runbook_url
            .strip_prefix("docs/")
            .is_some_and(|link| row.runbook_cell.contains(&format!("]({link})")));
        if !documented {
            problems.push(format!(
                "{alert}: the rules' runbook_url {runbook_url:?} is not the runbook linked in docs/metrics.md ({:?})",
                row.runbook_cell
            ));
        }
    }
    for stale in doc.alerts.keys().filter(|a| !alert_names.contains(*a)) {
        problems.push(format!(
            "docs/metrics.md lists alert {stale}, which the rules file does not have"
        ));
    }
    for path in files_under(&root().join("docs/runbooks"), &[".md"]) {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !doc.text.contains(&format!("](runbooks/{file})")) {
            problems.push(format!(
                "docs/runbooks/{file} is not linked from docs/metrics.md"
            ));
        }
    }
    assert!(!alert_names.is_empty(), "the rules file has no alerts");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_dashboard_and_its_rows_are_documented() {
    let doc = MetricsDoc::load();
    let mut problems = Vec::new();
    let all = dashboards();
    assert!(!all.is_empty(), "no dashboards");
    for (file, dashboard) in &all {
        let title = dashboard["title"].as_str().unwrap_or_default();
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        let row = doc.dashboards.iter().find(|(t, _, _)| t == title);
        match row {
            None => problems.push(format!(
                "dashboard {title:?} ({file}) is not in the dashboard table of docs/metrics.md"
            )),
            Some((_, doc_uid, file_cell)) => {
                if doc_uid != uid {
                    problems.push(format!(
                        "{title}: uid {uid}, docs/metrics.md says {doc_uid}"
                    ));
                }
                if !file_cell.contains(&format!("(../dashboards/{file})")) {
                    problems.push(format!("{title}: docs/metrics.md does not link {file}"));
                }
            }
        }
        let Some(section) = doc.section(title) else {
            problems.push(format!("docs/metrics.md has no section `### {title}`"));
            continue;
        };
        for panel in panels(dashboard) {
            if panel["type"] == "row" {
                let row_title = panel["title"].as_str().unwrap_or_default();
                if !section.contains(&format!("**{row_title}**")) {
                    problems.push(format!(
                        "{title}: row {row_title:?} is not named (in bold) in its section"
                    ));
                }
            }
        }
    }
    for (title, _, _) in &doc.dashboards {
        if !all.iter().any(|(_, d)| d["title"] == title.as_str()) {
            problems.push(format!(
                "docs/metrics.md lists dashboard {title:?}, which does not exist"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn references_to_the_docs_and_links_in_them_resolve() {
    let mut problems = BTreeSet::new();

    // `docs/metrics.md#…`, `docs/probing.md#…`, `docs/README.md#…` and `README.md#…`, written
    // repository-relative anywhere in the repository's text (in markdown, a bare `README.md#…`
    // is a relative link, checked below instead).
    let reference =
        Regex::new(r"(docs/(?:metrics|probing|README)\.md|README\.md)#([A-Za-z0-9_-]+)")
            .expect("reference regex");
    let mut known: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut scanned = Vec::new();
    for dir in [
        "src", "tests", "scripts", "examples", "deploy", "alerts", "docs", "benches",
    ] {
        scanned.extend(files_under(
            &root().join(dir),
            &[
                ".rs", ".md", ".toml", ".yml", ".yaml", ".sh", ".py", ".json",
            ],
        ));
    }
    scanned.push(root().join("README.md"));
    for path in &scanned {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let markdown = path.extension().is_some_and(|e| e == "md");
        for c in reference.captures_iter(&text) {
            let (target, anchor) = (&c[1], &c[2]);
            let start = c.get(0).map_or(0, |m| m.start());
            // A bare `README.md` is the root one only when no directory precedes it.
            if target == "README.md" && (markdown || text[..start].ends_with('/')) {
                continue;
            }
            let defined = known
                .entry(target.to_string())
                .or_insert_with(|| anchors(&read(target)));
            if !defined.contains(anchor) {
                problems.insert(format!(
                    "{}: {target}#{anchor} has no such section",
                    rel(path)
                ));
            }
        }
    }

    // Relative links of the documentation: the file exists, and its anchor too.
    let link = Regex::new(r"\]\(([^)\s]+)\)").expect("link regex");
    let mut markdown = files_under(&root().join("docs"), &[".md"]);
    markdown.push(root().join("README.md"));
    for path in &markdown {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("."));
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target, None),
            };
            let resolved = if file.is_empty() {
                path.clone()
            } else {
                dir.join(file)
            };
            if !resolved.exists() {
                problems.insert(format!("{}: link to {target}: no such file", rel(path)));
                continue;
            }
            if let Some(anchor) = anchor
                && resolved.extension().is_some_and(|e| e == "md")
            {
                let text = std::fs::read_to_string(&resolved).unwrap_or_default();
                if !anchors(&text).contains(anchor) {
                    problems.insert(format!("{}: link to {target}: no such section", rel(path)));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The helpers above, pinned on small inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn promql_names_skip_functions_keywords_labels_strings_and_variables() {
    let names = |e: &str| promql_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (server, le) (rate(a_bucket{server=~"$server", x="y{z}"}[$__rate_interval]))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names("histogram_quantile(0.95, sum by (server, le) (rate(b_bucket[5m]))) > 5"),
        ["b_bucket"]
    );
    assert_eq!(
        names("c / (d > 0) > 0.9 and on (server) e == 1 or vector(0)"),
        ["c", "d", "e"]
    );
    assert_eq!(names("time() - f_seconds > 300"), ["f_seconds"]);
    assert_eq!(names("absent(g_info)"), ["g_info"]);
    assert_eq!(
        names("level:h:rate5m{a=\"b\"} offset 5m"),
        ["level:h:rate5m"]
    );
    assert_eq!(names("count(i == 0) or vector(0)"), ["i"]);
    assert_eq!(
        grafana_query_names("label_values(j_up, server)")
            .into_iter()
            .collect::<Vec<_>>(),
        ["j_up"]
    );
    assert!(grafana_query_names("label_values(server)").is_empty());
}

#[test]
fn doc_tables_anchors_and_expositions_parse() {
    let doc = MetricsDoc::parse(
        "## Some Section: `x`\n\n<a id=\"kept\"></a>\n\
         | family | type | labels | unit | contract | set | meaning |\n|---|---|---|---|---|---|---|\n\
         | `m_total` | counter | `server`, `kind` | 1 | added | probe | text |\n\
         | `h_seconds` | histogram | — | s | playbook | probe | text |\n\n\
         | family | label | values |\n|---|---|---|\n| `m_total`, `n` | `kind` | `a`, `b` |\n",
    );
    assert_eq!(doc.families.len(), 2);
    assert_eq!(
        doc.families["m_total"].labels,
        BTreeSet::from(["server".to_string(), "kind".to_string()])
    );
    assert!(doc.families["h_seconds"].labels.is_empty());
    assert_eq!(doc.family_of("h_seconds_bucket"), Some("h_seconds"));
    assert_eq!(doc.family_of("m_total_bucket"), None);
    assert_eq!(
        doc.label_values[&("n".to_string(), "kind".to_string())],
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    let a = anchors(&doc.text);
    assert!(a.contains("some-section-x") && a.contains("kept"), "{a:?}");

    let e = Exposition::parse(
        "# TYPE h histogram\nh_bucket{s=\"a\\\"b\",le=\"+Inf\"} 1\nh_sum{s=\"x\"} 2\n\
         # TYPE c_total counter\nc_total 3\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.family_of("h_bucket"), "h");
    assert_eq!(e.samples[0].1["s"], "a\"b");
    assert_eq!(
        e.families_with_samples(),
        BTreeSet::from(["h".to_string(), "c_total".to_string()])
    );
    assert!(Exposition::parse("x{a=\"b} 1").is_err());
}
