//! The whole file: parse errors, the `file:line: `key`: message` of every component's
//! rejections, defaults, and what crosses components (`depends_on`, secrets).

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::SecretError;
use crate::deps::DependencySpec;
use crate::mcp::TransportSpec;
use crate::probe::CheckType;
use crate::security::redact;

const MINIMAL: &str = r#"
[exporter]
listen = "127.0.0.1:9931"
interval = "15s"
timeout = "10s"

[[servers]]
name = "everything"
transport = "stdio"
command = "npx"
args = ["-y", "@modelcontextprotocol/server-everything"]

[[servers]]
name = "remote"
transport = "http"            # Streamable HTTP; "sse" for the legacy HTTP+SSE transport
url = "http://127.0.0.1:3001/mcp"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"))
}

fn error_of(text: &str) -> String {
    parse(text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn the_minimal_file_of_the_issue_parses() {
    let config = parse(MINIMAL).expect("minimal config");
    assert_eq!(config.exporter.listen.to_string(), "127.0.0.1:9931");
    assert_eq!(config.exporter.interval, Duration::from_secs(15));
    assert_eq!(config.servers.len(), 2);
    assert_eq!(config.servers[0].name, "everything");
    assert_eq!(config.servers[0].check, CheckType::Readiness);
    assert_eq!(config.servers[0].timeout, Duration::from_secs(10));
    assert!(matches!(
        config.servers[1].transport,
        TransportSpec::Http { .. }
    ));
    assert_eq!(config.servers[1].line, 13);
}

#[test]
fn defaults_apply_when_exporter_table_is_absent() {
    let config = parse("").expect("empty config");
    assert_eq!(config.exporter.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.exporter.interval, DEFAULT_INTERVAL);
    assert_eq!(config.exporter.timeout, DEFAULT_TIMEOUT);
    assert_eq!(config.exporter.degraded_latency, DEFAULT_DEGRADED_LATENCY);
    assert!(config.servers.is_empty());
}

#[test]
fn unknown_transport_names_the_line_and_choices() {
    let err = error_of("[[servers]]\nname = \"a\"\ntransport = \"grpc\"\n");
    assert!(err.starts_with("test.toml:3: "), "{err}");
    assert!(
        err.contains("grpc") && err.contains("stdio") && err.contains("sse"),
        "{err}"
    );
}

#[test]
fn missing_url_names_the_key() {
    let err = error_of("[[servers]]\nname = \"a\"\ntransport = \"http\"\n");
    assert_eq!(
        err,
        "test.toml:3: `servers[0].url`: missing for http server \"a\"; expected e.g. \"http://127.0.0.1:3001/mcp\""
    );
}

#[test]
fn missing_command_names_the_key() {
    let err = error_of("\n[[servers]]\nname = \"a\"\ntransport = \"stdio\"\n");
    assert!(
        err.starts_with("test.toml:4: `servers[0].command`: missing"),
        "{err}"
    );
}

#[test]
fn bad_duration_names_the_line_and_the_expected_form() {
    let err = error_of("[exporter]\ninterval = \"soon\"\n");
    assert!(err.starts_with("test.toml:2: "), "{err}");
    assert!(err.contains("invalid duration \"soon\""), "{err}");
    assert!(err.contains("\"15s\""), "{err}");
}

#[test]
fn type_errors_name_the_key_with_its_table() {
    let err = error_of(
        "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n\n[[servers]]\nname = \"b\"\ntransport = \"stdio\"\ncommand = \"x\"\ntimeout = 10\n",
    );
    assert_eq!(
        err,
        "test.toml:10: `servers[1].timeout`: expected a duration string such as \"10s\" or \"500ms\", found integer `10`"
    );
    let err = error_of("[exporter]\ninterval = \"soon\"\n");
    assert!(
        err.starts_with("test.toml:2: `exporter.interval`: invalid duration"),
        "{err}"
    );
}

#[test]
fn zero_duration_is_rejected() {
    let err = error_of("[exporter]\ntimeout = \"0s\"\n");
    assert!(err.contains("greater than zero"), "{err}");
}

#[test]
fn duplicate_names_are_rejected() {
    let text = "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\n\n[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"y\"\n";
    let err = error_of(text);
    assert!(
        err.starts_with("test.toml:6: `servers[1].name`: duplicate server name \"a\""),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let err = error_of(
        "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\ncomand = \"y\"\n",
    );
    assert!(err.starts_with("test.toml:5: "), "{err}");
    assert!(err.contains("comand"), "{err}");
}

#[test]
fn stdio_server_with_url_is_rejected() {
    let err = error_of(
        "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nurl = \"http://h/\"\n",
    );
    assert!(err.starts_with("test.toml:5: `servers[0].url`"), "{err}");
}

#[test]
fn non_http_url_scheme_is_rejected() {
    let err = error_of("[[servers]]\nname = \"a\"\ntransport = \"sse\"\nurl = \"ftp://h/sse\"\n");
    assert!(err.contains("scheme \"ftp\""), "{err}");
}

#[test]
fn bad_listen_address_is_rejected() {
    let err = error_of("[exporter]\nlisten = \"localhost\"\n");
    assert!(err.starts_with("test.toml:2: `exporter.listen`"), "{err}");
}

#[test]
fn bad_server_name_is_rejected() {
    let err = error_of("[[servers]]\nname = \"a b\"\ntransport = \"stdio\"\ncommand = \"x\"\n");
    assert!(err.contains("not a valid name"), "{err}");
}

#[test]
fn syntax_errors_carry_the_line() {
    let err = error_of("[exporter]\nlisten = \n");
    assert!(err.starts_with("test.toml:2: "), "{err}");
}

#[test]
fn tool_call_and_per_server_settings_parse() {
    let text = r#"
[[servers]]
name = "e"
transport = "stdio"
command = "node"
check = "liveness"
interval = "5s"
timeout = "2s"
degraded_latency = "300ms"
expected_tools = ["echo"]
env = { TOKEN = "${MY_TOKEN}" }
call = { tool = "echo", arguments = { message = "hi", n = 2 }, expect_text = "Echo: hi" }
"#;
    let config = parse(text).expect("config");
    let s = &config.servers[0];
    assert_eq!(s.check, CheckType::Liveness);
    assert_eq!(s.interval, Duration::from_secs(5));
    assert_eq!(s.degraded_latency, Duration::from_millis(300));
    let call = s.call.as_ref().expect("call");
    assert_eq!(call.arguments, serde_json::json!({"message": "hi", "n": 2}));
    assert_eq!(s.referenced_variables(), vec!["MY_TOKEN".to_string()]);
    let resolved = s
        .resolve_transport_with(|n| match n {
            "MY_TOKEN" => Ok("s3cret".to_string()),
            other => Err(SecretError::Unset { name: other.into() }),
        })
        .expect("resolved");
    match resolved {
        TransportSpec::Stdio { env, .. } => assert_eq!(env["TOKEN"], "s3cret"),
        other => panic!("unexpected {other:?}"),
    }
    let unset = s
        .resolve_transport_with(|n| Err(SecretError::Unset { name: n.into() }))
        .expect_err("unset");
    assert_eq!(unset.variable, "MY_TOKEN");
    assert_eq!(unset.key, "env.TOKEN");
    assert_eq!(
        unset.to_string(),
        "environment variable `MY_TOKEN` (referenced by `env.TOKEN`) is not set"
    );
}

#[test]
fn security_patterns_are_validated() {
    let c = parse("[security]\npatterns = [\"denied\"]\n").expect("valid");
    assert_eq!(c.security.patterns, Some(vec!["denied".to_string()]));
    let err = error_of("[security]\npatterns = [\"(\"]\n");
    assert!(
        err.starts_with("test.toml:2: `security.patterns[0]`"),
        "{err}"
    );
}

const DEPENDENCIES: &str = r#"
[[dependencies]]
name = "pg"
kind = "postgres"
dsn_env = "PG_DSN"

[[dependencies]]
name = "logs-dir"
kind = "filesystem"
path = "/var/log/mcp-servers"
writable = true
min_free_percent = 10
critical = false

[[servers]]
name = "postgres"
transport = "stdio"
command = "mcp-server-postgres"
args = ["postgresql://localhost/mcp"]
depends_on = ["pg", "logs-dir"]
"#;

#[test]
fn servers_depend_on_declared_dependencies() {
    let c = Config::from_toml(DEPENDENCIES, Path::new("t.toml")).expect("valid");
    assert_eq!(c.dependencies.len(), 2);
    assert!(matches!(
        c.dependencies[0].spec,
        DependencySpec::Postgres { .. }
    ));
    assert_eq!(
        c.servers[0].depends_on,
        vec!["pg".to_string(), "logs-dir".to_string()]
    );
}

#[test]
fn unknown_depends_on_names_the_key_and_line() {
    let text = DEPENDENCIES.replace(
        r#"depends_on = ["pg", "logs-dir"]"#,
        r#"depends_on = ["pg", "redis"]"#,
    );
    let err = Config::from_toml(&text, Path::new("t.toml"))
        .expect_err("unknown dependency")
        .to_string();
    assert!(
        err.starts_with("t.toml:20: `servers[0].depends_on`: unknown dependency \"redis\""),
        "{err}"
    );
    assert!(err.contains("pg, logs-dir"), "{err}");
    let text = DEPENDENCIES.replace(
        r#"depends_on = ["pg", "logs-dir"]"#,
        r#"depends_on = ["pg", "pg"]"#,
    );
    let err = Config::from_toml(&text, Path::new("t.toml"))
        .expect_err("twice")
        .to_string();
    assert_eq!(
        err,
        "t.toml:20: `servers[0].depends_on`: dependency \"pg\" is listed twice"
    );
    let err = error_of(
        "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\ndepends_on = [\"pg\"]\n",
    );
    assert!(
        err.ends_with("unknown dependency \"pg\"; declared [[dependencies]] names: none"),
        "{err}"
    );
}

#[test]
fn dependency_mistakes_carry_the_file_and_line() {
    let err = Config::from_toml(
        "[[dependencies]]\nname = \"pg\"\nkind = \"postgres\"\ndsn = \"postgres://u:pw@h/db\"\n",
        Path::new("t.toml"),
    )
    .expect_err("secret in the text")
    .to_string();
    assert!(
        err.starts_with("t.toml:4: `dependencies[0].dsn`: secrets are not read"),
        "{err}"
    );
    assert!(!err.contains("pw@"), "{err}");
}

#[test]
fn process_mistakes_name_the_server_key_and_line() {
    let cases = [
        (
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\npid_file = \"/run/a.pid\"\n",
            "t.toml:5: `servers[0].pid_file`: a stdio server's process",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://h/\"\nprocess_match = \"(\"\n",
            "t.toml:5: `servers[0].process_match`: not a valid regular expression",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://h/\"\npid_file = \"/p\"\nsystemd_unit = \"u\"\n",
            "t.toml:6: `servers[0].systemd_unit`: set only one of",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nbudgets = { fd_fraction = 1.5 }\n",
            "t.toml:5: `servers[0].budgets.fd_fraction`",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nremediation = { command = [\"true\"] }\n",
            "t.toml:5: `servers[0].remediation`: a stdio server is restarted",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://h/\"\nrestart = { crash_loop_failures = 2 }\n",
            "t.toml:5: `servers[0].restart`: only stdio servers",
        ),
        (
            "[[servers]]\nname = \"a\"\ntransport = \"stdio\"\ncommand = \"x\"\nrestart = { backoff = \"1s\" }\n",
            "t.toml:5: ",
        ),
    ];
    for (text, want) in cases {
        let err = Config::from_toml(text, Path::new("t.toml"))
            .expect_err(text)
            .to_string();
        assert!(err.starts_with(want), "{err}\nwant prefix: {want}");
    }
}

#[test]
fn store_table_of_a_config_file_is_validated_with_its_line() {
    let path = Path::new("/srv/mcp/c.toml");
    let c = Config::from_toml(
        "[store]\nmax_size = \"1MiB\"\nmax_age = \"1h\"\nenabled = false\n",
        path,
    )
    .expect("valid");
    assert_eq!(c.store.max_size, 1024 * 1024);
    assert_eq!(c.store.max_age, Duration::from_secs(3600));
    assert!(!c.store.enabled);
    assert_eq!(
        c.store.path,
        std::path::PathBuf::from("/srv/mcp/mcp-exporter.db")
    );
    let err = Config::from_toml("[store]\nbogus = 1\n", path)
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("bogus") && err.contains("c.toml:2"), "{err}");
    let err = Config::from_toml("\n[store]\nmax_size = \"12 parsecs\"\n", path)
        .expect_err("unknown unit")
        .to_string();
    assert!(
        err.contains("store.max_size") && err.contains("c.toml:2"),
        "{err}"
    );
}

#[test]
fn secrets_come_from_files_and_literal_ones_are_flagged() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "file-secret-123\n").expect("write");
    let text = format!(
        "[[servers]]\nname = \"a\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = {{ Authorization = \"Bearer ${{file:{}}}\" }}\n\n[[servers]]\nname = \"b\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:1/mcp\"\nheaders = {{ Authorization = \"Bearer literal-123456\" }}\n",
        file.display()
    );
    let config = Config::from_toml(&text, Path::new("t.toml")).expect("config");
    match config.servers[0].resolve_transport().expect("resolved") {
        TransportSpec::Http { headers, .. } => {
            assert_eq!(headers[0].1, "Bearer file-secret-123")
        }
        other => panic!("unexpected {other:?}"),
    }
    let warnings = config.literal_secret_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("\"b\""), "{warnings:?}");
    assert_eq!(
        warnings[0],
        "server \"b\": `Authorization` holds a literal secret; use \"${VAR}\" or \"${file:/path}\" so it stays out of the file"
    );
    config.register_secrets();
    assert_eq!(
        redact::redact("x file-secret-123 literal-123456"),
        "x [REDACTED] [REDACTED]"
    );
    let missing = config.servers[0]
        .resolve_transport_with(|n| {
            Err(SecretError::Empty {
                path: n.trim_start_matches("file:").into(),
            })
        })
        .expect_err("unset");
    assert!(
        missing.to_string().starts_with("secret file `"),
        "{missing}"
    );
    // A secret file above the bound is named, not cut.
    std::fs::write(&file, "x".repeat(64 * 1024 + 1)).expect("write");
    let too_large = config.servers[0]
        .resolve_transport()
        .expect_err("too large")
        .to_string();
    assert_eq!(
        too_large,
        format!(
            "secret file `{}` is larger than 65536 bytes, so it (referenced by `headers.Authorization`) is not set",
            file.display()
        )
    );
}

/// Every section is optional: an empty file is a valid configuration (no servers, the
/// defaults), so a component adding a section must give it a default.
#[test]
fn an_empty_file_is_a_configuration_of_defaults() {
    let config = Config::from_toml("", Path::new("empty.toml")).expect("empty file");
    assert!(config.servers.is_empty() && config.dependencies.is_empty());
    assert!(config.modules.is_empty() && config.proxies.is_empty());
    assert!(config.alertmanager.is_none());
    assert_eq!(config.exporter.listen.to_string(), DEFAULT_LISTEN);
}

#[test]
fn the_metrics_profile_is_full_unless_the_fleet_is_chosen() {
    use crate::metric_registry::{FamilySwitches, MetricsProfile};
    let config = Config::from_toml("", Path::new("empty.toml")).expect("empty file");
    assert_eq!(config.exporter.metrics, MetricsProfile::Full);
    assert_eq!(config.exporter.families, FamilySwitches::default());
    let fleet = Config::from_toml("[exporter]\nmetrics = \"fleet\"\n", Path::new("f.toml"))
        .expect("fleet profile");
    assert_eq!(fleet.exporter.metrics, MetricsProfile::Fleet);
    assert!(!fleet.exporter.families.probe_method_histograms);
    assert!(
        fleet.exporter.families.semconv_histograms,
        "real traffic's stays"
    );
    // A per-family key overrides its profile's choice, and only that family.
    let opted_in = Config::from_toml(
        "[exporter]\nmetrics = \"fleet\"\nmethod_histograms = true\nsemconv_histograms = false\n",
        Path::new("o.toml"),
    )
    .expect("fleet profile with method histograms");
    assert!(opted_in.exporter.families.probe_method_histograms);
    assert!(!opted_in.exporter.families.semconv_histograms);
    let err = Config::from_toml("[exporter]\nmetrics = \"lean\"\n", Path::new("bad.toml"))
        .expect_err("unknown profile")
        .to_string();
    assert!(
        err.contains("bad.toml:2") && err.contains("exporter.metrics"),
        "{err}"
    );
}
