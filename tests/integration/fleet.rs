//! Fleets: three daemons sharding one 300-server file, scraped by a real Prometheus, split the
//! fleet with no overlap and no gap, and when one is killed exactly its third goes missing (and
//! the per-instance MCPExporterAbsent expression names it); `--discovery.dir` starts and stops
//! servers listed by file_sd and MCP client files without a restart, keeps the sessions of
//! servers it did not change, and keeps the last good set of a malformed file; the fleet
//! metrics profile keeps a liveness server within 25 series and the bundled rules evaluate on it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::http::http_request;
use crate::common::net::free_port;
use crate::common::paths::repo_root;
use crate::common::prometheus::Prometheus;
use crate::common::servers::spawn_http_everything;
use crate::common::tools::{Tool, require, require_all};
use crate::common::wait::eventually;

const SERVERS: usize = 300;

/// 300 cheap servers: HTTP endpoints on a loopback port nothing listens on, so each probe is one
/// refused connection (sharding is about which instance owns a series, not about its value).
fn fleet_config(dead_port: u16) -> String {
    (0..SERVERS)
        .map(|i| {
            format!(
                "[[servers]]\nname = \"fleet-{i:03}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{dead_port}/mcp/{i}\"\ncheck = \"liveness\"\ninterval = \"2s\"\ntimeout = \"1s\"\n\n"
            )
        })
        .collect()
}

/// The `server` labels of an instance's `/sd`.
fn sd_servers(daemon: &Daemon) -> BTreeSet<String> {
    let (status, body) = daemon.get("/sd");
    assert_eq!(status, 200, "{body}");
    let groups: serde_json::Value = serde_json::from_str(&body).expect("/sd is JSON");
    groups
        .as_array()
        .expect("/sd is a list of target groups")
        .iter()
        .map(|g| {
            assert_eq!(g["targets"].as_array().map(Vec::len), Some(1), "{g}");
            g["labels"]["server"]
                .as_str()
                .expect("server label")
                .to_string()
        })
        .collect()
}

/// `server` label -> value of each sample of `expr`.
fn by_server(prometheus: &Prometheus, expr: &str) -> Result<Vec<(String, String)>, String> {
    Ok(prometheus
        .query(expr)?
        .iter()
        .map(|s| {
            (
                s["metric"]["server"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                s["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// A real Prometheus scraping `targets` every second.
fn start_prometheus(bin: &Path, dir: &Path, targets: &[&str]) -> Prometheus {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Prometheus::start(
        bin,
        dir,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: mcp-exporter\n    static_configs:\n      - targets: [{list}]\n"
        ),
    )
}

#[test]
fn three_shards_split_a_300_server_file_and_a_killed_one_leaves_exactly_its_third_absent() {
    let Some(prometheus) = require(Tool::Prometheus) else {
        return;
    };
    let config = fleet_config(free_port());
    let mut shards: Vec<Daemon> = (1..=3)
        .map(|k| Daemon::start_with(&config, &["--shard", &format!("{k}/3")], &[]))
        .collect();
    // Each instance publishes its part at /sd: disjoint, together the whole file.
    let parts: Vec<BTreeSet<String>> = shards.iter().map(sd_servers).collect();
    let mut union = BTreeSet::new();
    for part in &parts {
        assert!(
            part.len() > SERVERS / 6,
            "a shard of {} servers",
            part.len()
        );
        for server in part {
            assert!(union.insert(server.clone()), "{server} in two shards");
        }
    }
    assert_eq!(union.len(), SERVERS);

    let dir = tempfile::tempdir().expect("temp dir");
    let addrs: Vec<String> = shards.iter().map(|d| d.addr().to_string()).collect();
    let targets: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let prom = start_prometheus(&prometheus, dir.path(), &targets);

    // Every server is scraped from exactly one instance.
    eventually(Duration::from_secs(90), Duration::from_millis(500), || {
        let counts = by_server(&prom, "count by (server) (mcp_server_up)")?;
        let servers: BTreeSet<String> = counts.iter().map(|(s, _)| s.clone()).collect();
        let doubled: Vec<&(String, String)> = counts.iter().filter(|(_, n)| n != "1").collect();
        if !doubled.is_empty() {
            panic!("servers scraped from more than one instance: {doubled:?}");
        }
        if servers == union {
            Ok(())
        } else {
            Err(format!("{} of {SERVERS} servers scraped", servers.len()))
        }
    });

    // Kill the second instance: exactly its servers go missing, and the per-instance absent
    // expression of MCPExporterAbsent names its instance and no other.
    let killed = shards.remove(1);
    let killed_addr = killed.addr().to_string();
    drop(killed);
    let expected: BTreeSet<String> = parts[0].union(&parts[2]).cloned().collect();
    eventually(Duration::from_secs(60), Duration::from_millis(500), || {
        let counts = by_server(&prom, "count by (server) (mcp_server_up)")?;
        let servers: BTreeSet<String> = counts.iter().map(|(s, _)| s.clone()).collect();
        assert!(counts.iter().all(|(_, n)| n == "1"), "{counts:?}");
        if servers == expected {
            Ok(())
        } else {
            Err(format!(
                "{} servers scraped, {} expected; missing that should not be: {:?}",
                servers.len(),
                expected.len(),
                expected.difference(&servers).take(5).collect::<Vec<_>>()
            ))
        }
    });
    let absent = prom
        .query(
            "max_over_time(mcp_exporter_build_info[1d]) unless on(job, instance) mcp_exporter_build_info",
        )
        .expect("query");
    let instances: Vec<&str> = absent
        .iter()
        .filter_map(|s| s["metric"]["instance"].as_str())
        .collect();
    assert_eq!(instances, [killed_addr.as_str()], "{absent:?}");
}

/// The names of the servers the daemon probes.
fn probed(daemon: &Daemon) -> BTreeSet<String> {
    let (_, body) = daemon.get("/api/servers");
    let servers: serde_json::Value = serde_json::from_str(&body).expect("/api/servers JSON");
    servers
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

fn write_atomically(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("write");
    std::fs::rename(&partial, path).expect("rename");
}

fn wait_for_servers(daemon: &Daemon, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let now = probed(daemon);
        if now == want {
            Ok(())
        } else {
            Err(format!("probing {now:?}, want {want:?}"))
        }
    });
}

fn sample(daemon: &Daemon, name: &str, server: &str) -> f64 {
    daemon
        .scrape()
        .value(name, &[("server", server)])
        .unwrap_or(0.0)
}

#[test]
fn a_discovery_directory_adds_and_removes_servers_without_a_restart() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let discovery = tempfile::tempdir().expect("temp dir");
    let dead = free_port();
    let static_config = format!(
        "[exporter]\ninterval = \"1s\"\ntimeout = \"3s\"\n\n[[servers]]\nname = \"static\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{dead}/mcp\"\ncheck = \"liveness\"\n"
    );
    let sd = discovery.path().join("targets.json");
    write_atomically(
        &sd,
        &format!(
            r#"[{{"targets": ["127.0.0.1:{port}"], "labels": {{"name": "everything", "check": "liveness"}}}},
                {{"targets": ["127.0.0.1:{dead}"]}}]"#
        ),
    );
    let daemon = Daemon::start_with(
        &static_config,
        &["--discovery.dir", &discovery.path().display().to_string()],
        &[],
    );
    let dead_name = format!("127.0.0.1-{dead}");
    wait_for_servers(&daemon, &["static", "everything", &dead_name]);
    eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let up = sample(&daemon, "mcp_server_up", "everything");
        if up == 1.0 {
            Ok(())
        } else {
            Err(format!("up {up}"))
        }
    });
    let sessions = sample(&daemon, "mcp_sessions_started_total", "everything");
    assert!(sessions >= 1.0, "{sessions}");

    // An MCP client file beside it adds its server; the unchanged one keeps its session.
    write_atomically(
        &discovery.path().join("client.json"),
        &format!(
            r#"{{"mcpServers": {{"from-client": {{"type": "http", "url": "http://127.0.0.1:{dead}/other"}}}}}}"#
        ),
    );
    wait_for_servers(
        &daemon,
        &["static", "everything", &dead_name, "from-client"],
    );

    // A malformed file keeps its last good set, says why and is counted.
    write_atomically(
        &sd,
        r#"[{"targets": ["127.0.0.1:1"], "labels": {"chek": "x"}}]"#,
    );
    eventually(Duration::from_secs(30), Duration::from_millis(200), || {
        let errors = daemon
            .scrape()
            .sum("mcp_exporter_discovery_file_errors_total", &[]);
        // The reason is logged; the log line may reach the pipe after the counter moved.
        if errors >= 1.0 && daemon.stderr().contains("chek") {
            Ok(())
        } else {
            Err(format!("errors {errors}; stderr: {}", daemon.stderr()))
        }
    });
    assert_eq!(
        probed(&daemon),
        ["static", "everything", &dead_name, "from-client"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // Removing a target stops it; removing a file stops its servers; the session of the
    // server whose entry never changed was never replaced.
    write_atomically(
        &sd,
        &format!(
            r#"[{{"targets": ["127.0.0.1:{port}"], "labels": {{"name": "everything", "check": "liveness"}}}}]"#
        ),
    );
    std::fs::remove_file(discovery.path().join("client.json")).expect("remove");
    wait_for_servers(&daemon, &["static", "everything"]);
    assert!(
        daemon
            .scrape()
            .samples("mcp_server_up")
            .iter()
            .all(|(labels, _)| labels.get("server").map(String::as_str) != Some(dead_name.as_str())),
        "the removed server's series are gone"
    );
    assert_eq!(
        sample(&daemon, "mcp_sessions_started_total", "everything"),
        sessions,
        "the unchanged server kept its session"
    );
}

#[test]
fn the_sharded_kubernetes_manifests_fit_together() {
    use serde::Deserialize;
    use serde_yaml_ng::Value as Yaml;
    let rel = "deploy/kubernetes/sharded/mcp-exporter-sharded.yaml";
    let text = crate::common::paths::read_repo_file(rel);
    let objects: Vec<Yaml> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect();
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {rel}"))
    };
    let set = find("StatefulSet");
    let service = find("Service");
    let monitor = find("ServiceMonitor");
    let pod = &set["spec"]["template"];
    assert_eq!(
        set["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "headless: one target per pod"
    );
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    // `--shard $(POD_NAME)/N` with N = replicas, POD_NAME from the downward API.
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let shard = args
        .iter()
        .position(|a| *a == "--shard")
        .and_then(|i| args.get(i + 1))
        .expect("--shard in the args");
    let replicas = set["spec"]["replicas"].as_u64().expect("replicas");
    assert_eq!(*shard, format!("$(POD_NAME)/{replicas}"));
    assert_eq!(container["env"][0]["name"], "POD_NAME");
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // Each pod's name, as Kubernetes substitutes it, is a valid shard: together all shards.
    let name = set["metadata"]["name"].as_str().expect("name");
    let shards: Vec<String> = (0..replicas)
        .map(|ordinal| format!("{name}-{ordinal}/{replicas}"))
        .collect();
    for (ordinal, shard) in shards.iter().enumerate() {
        let parsed: mcp_exporter::daemon::shard::Shard =
            shard.parse().unwrap_or_else(|e| panic!("{shard}: {e}"));
        assert_eq!(parsed.index() as usize, ordinal + 1);
    }
    // The configuration the ConfigMap carries is valid.
    let config = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("ConfigMap")["data"]["mcp-exporter.toml"]
        .as_str()
        .expect("config text");
    mcp_exporter::settings::Config::from_toml(config, Path::new("sharded.toml"))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
}

/// Series of `server` in a scrape.
fn series_of(scrape: &crate::common::scrape::Scrape, server: &str) -> usize {
    scrape
        .all()
        .iter()
        .filter(|s| s.labels.get("server").map(String::as_str) == Some(server))
        .count()
}

/// The fleet metrics profile (docs/metrics.md#profiles): a daemon probing liveness servers
/// emits at most 25 series per server and no per-method probe histogram, and the bundled rules,
/// evaluated by a real Prometheus on its output, all evaluate without error; the
/// MCPSlowResponseTime expression (threshold lowered to 0) covers every server through the
/// whole-probe quantile.
#[test]
fn the_fleet_profile_keeps_liveness_servers_within_25_series_and_the_rules_evaluate() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let Some(prometheus_bin) = require(Tool::Prometheus) else {
        return;
    };
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let servers = ["live-a", "live-b", "live-c"];
    let mut config = String::from("[exporter]\nmetrics = \"fleet\"\n\n");
    for name in servers {
        config.push_str(&format!(
            "[[servers]]\nname = \"{name}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ncheck = \"liveness\"\ninterval = \"1s\"\ntimeout = \"5s\"\n\n"
        ));
    }
    let daemon = Daemon::start(&config);
    eventually(Duration::from_secs(60), Duration::from_millis(250), || {
        let scrape = daemon.scrape();
        for server in servers {
            let probes = scrape.value("mcp_probes_total", &[("server", server)]);
            if probes.unwrap_or(0.0) < 2.0 {
                return Err(format!("{server}: {probes:?} probes"));
            }
        }
        Ok(())
    });
    let scrape = daemon.scrape();
    for server in servers {
        assert_eq!(
            scrape.value("mcp_server_up", &[("server", server)]),
            Some(1.0),
            "{}",
            scrape.text()
        );
        let series = series_of(&scrape, server);
        assert!(series <= 25, "{server}: {series} series\n{}", scrape.text());
    }
    assert!(
        !scrape.text().contains("source=\"probe\",le="),
        "no per-method probe histogram:\n{}",
        scrape.text()
    );

    // The bundled rules, evaluated every second instead of every 30 s.
    let dir = daemon.dir().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let rules = std::fs::read_to_string(repo_root().join("alerts/mcp-exporter.rules.yml"))
        .expect("rules file");
    std::fs::write(
        dir.join("mcp.rules.yml"),
        rules.replace("interval: 30s", "interval: 1s"),
    )
    .expect("write rules");
    let prometheus = Prometheus::start(
        &prometheus_bin,
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files: [mcp.rules.yml]\nscrape_configs:\n  - job_name: mcp-exporter\n    static_configs:\n      - targets: [\"{}\"]\n",
            daemon.addr()
        ),
    );
    let slow_expr = rule_expr(&rules, "MCPSlowResponseTime").replace("> 5", "> 0");
    eventually(Duration::from_secs(90), Duration::from_millis(500), || {
        let covered: BTreeSet<String> = by_server(&prometheus, &slow_expr)?
            .into_iter()
            .map(|(server, _)| server)
            .collect();
        let want: BTreeSet<String> = servers.iter().map(|s| s.to_string()).collect();
        if covered != want {
            return Err(format!("{slow_expr}: {covered:?}"));
        }
        rules_evaluated_without_error(&prometheus)
    });
}

/// The `expr` of the rule named `name` (an alert) in the rules file's text.
fn rule_expr(rules: &str, name: &str) -> String {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(rules).expect("rules YAML");
    doc["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .find(|r| r["alert"].as_str() == Some(name))
        .and_then(|r| r["expr"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no alert {name}"))
}

/// Ok once every rule of every group was evaluated at least once, none with an error.
fn rules_evaluated_without_error(prometheus: &Prometheus) -> Result<(), String> {
    let response = http_request(
        &prometheus.addr,
        "GET",
        "/api/v1/rules",
        &[],
        b"",
        Duration::from_secs(10),
    )
    .map_err(|e| e.to_string())?;
    let json: serde_json::Value =
        serde_json::from_str(&response.text()).map_err(|e| e.to_string())?;
    let rules: Vec<&serde_json::Value> = json["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    if rules.is_empty() {
        return Err("no rules loaded".into());
    }
    for rule in rules {
        if rule["health"] != "ok" {
            return Err(format!(
                "{}: {} {}",
                rule["name"], rule["health"], rule["lastError"]
            ));
        }
    }
    Ok(())
}

/// The `method` labels of the probes' `mcp_request_duration_seconds` series of `server`.
fn probe_histogram_methods(
    scrape: &crate::common::scrape::Scrape,
    server: &str,
) -> BTreeSet<String> {
    scrape
        .samples("mcp_request_duration_seconds_count")
        .into_iter()
        .filter(|(labels, _)| {
            labels.get("server").map(String::as_str) == Some(server)
                && labels.get("source").map(String::as_str) == Some("probe")
        })
        .filter_map(|(labels, _)| labels.get("method").cloned())
        .collect()
}

/// `method_histograms = true` on one `[[servers]]` entry of a fleet-profile daemon gives that
/// server its probes' per-method histograms and no other server any (docs/metrics.md#profiles).
#[test]
fn a_servers_method_histograms_key_overrides_the_fleet_profile_for_that_server_only() {
    if !require_all(&[Tool::Node]) {
        return;
    }
    let (_everything, port) = spawn_http_everything("streamableHttp");
    let entry = |name: &str, extra: &str| {
        format!(
            "[[servers]]\nname = \"{name}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ncheck = \"liveness\"\ninterval = \"1s\"\ntimeout = \"5s\"\n{extra}\n"
        )
    };
    let config = format!(
        "[exporter]\nmetrics = \"fleet\"\n\n{}{}",
        entry("opted", "method_histograms = true\n"),
        entry("plain", "")
    );
    let daemon = Daemon::start(&config);
    let scrape = eventually(Duration::from_secs(60), Duration::from_millis(250), || {
        let scrape = daemon.scrape();
        for server in ["opted", "plain"] {
            let probes = scrape.value("mcp_probes_total", &[("server", server)]);
            if probes.unwrap_or(0.0) < 2.0 {
                return Err(format!("{server}: {probes:?} probes"));
            }
        }
        Ok(scrape)
    });
    let opted = probe_histogram_methods(&scrape, "opted");
    assert!(
        opted.contains("ping") || opted.contains("initialize"),
        "opted: {opted:?}\n{}",
        scrape.text()
    );
    assert!(
        scrape
            .samples("mcp_client_operation_duration_seconds_count")
            .iter()
            .any(|(labels, _)| labels.get("server").map(String::as_str) == Some("opted")),
        "the OpenTelemetry histogram follows the key:\n{}",
        scrape.text()
    );
    assert_eq!(
        probe_histogram_methods(&scrape, "plain"),
        BTreeSet::new(),
        "{}",
        scrape.text()
    );
    for family in [
        "mcp_client_operation_duration_seconds_count",
        "mcp_tool_execution_duration_seconds_count",
    ] {
        assert!(
            !scrape
                .samples(family)
                .iter()
                .any(|(labels, _)| labels.get("server").map(String::as_str) == Some("plain")),
            "{family} of plain:\n{}",
            scrape.text()
        );
    }
    // Both servers' requests are counted either way.
    for server in ["opted", "plain"] {
        assert!(
            scrape.sum("mcp_requests_total", &[("server", server)]) > 0.0,
            "{server}"
        );
    }
}

/// A reload whose file changes `[exporter] metrics` is refused as a whole (the profile is
/// registered at start; docs/metrics.md#profiles): the reload answers the reason, the gauge of
/// the last reload is 0, a server added in the same file is not started, and the fleet profile
/// keeps its families; the same file with the profile restored reloads.
#[test]
fn a_reload_that_changes_the_metrics_profile_is_refused_and_the_running_one_kept() {
    let dead = free_port();
    let entry = |name: &str| {
        format!(
            "[[servers]]\nname = \"{name}\"\ntransport = \"http\"\nurl = \"http://127.0.0.1:{dead}/mcp\"\ncheck = \"liveness\"\ninterval = \"1s\"\ntimeout = \"1s\"\n\n"
        )
    };
    let daemon = Daemon::start_with(
        &format!("[exporter]\nmetrics = \"fleet\"\n\n{}", entry("first")),
        &["--web.enable-lifecycle"],
        &[],
    );
    eventually(Duration::from_secs(30), Duration::from_millis(250), || {
        let probes = daemon
            .scrape()
            .value("mcp_probes_total", &[("server", "first")]);
        if probes.unwrap_or(0.0) >= 1.0 {
            Ok(())
        } else {
            Err(format!("first: {probes:?} probes"))
        }
    });
    let reload = |text: &str| {
        daemon.rewrite_config(text);
        let response = daemon.request("POST", "/-/reload", &[], b"");
        (response.status, response.text())
    };
    let (status, body) = reload(&format!(
        "[exporter]\nmetrics = \"full\"\n\n{}{}",
        entry("first"),
        entry("second")
    ));
    assert_ne!(status, 200, "{body}");
    assert!(
        body.contains("exporter.metrics") && body.contains("restart"),
        "{body}"
    );
    let scrape = daemon.scrape();
    assert_eq!(
        scrape.value("mcp_exporter_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("mcp_probes_total", &[("server", "second")]),
        None,
        "nothing of the refused file applies"
    );
    // Still the fleet profile: no protocol violation kind at 0 (the full profile has four).
    assert!(
        scrape.samples("mcp_protocol_violations_total").is_empty(),
        "{}",
        scrape.text()
    );
    assert!(
        daemon.stderr().contains("exporter.metrics"),
        "{}",
        daemon.stderr()
    );

    // The same servers under the running profile reload.
    let (status, body) = reload(&format!(
        "[exporter]\nmetrics = \"fleet\"\n\n{}{}",
        entry("first"),
        entry("second")
    ));
    assert_eq!(status, 200, "{body}");
    eventually(Duration::from_secs(30), Duration::from_millis(250), || {
        let scrape = daemon.scrape();
        let probes = scrape.value("mcp_probes_total", &[("server", "second")]);
        match (
            scrape.value("mcp_exporter_config_last_reload_successful", &[]),
            probes,
        ) {
            (Some(1.0), Some(n)) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}
