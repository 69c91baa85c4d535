//! Tests of loading and checking the configuration file.

use super::*;

fn write(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn defaults_without_a_file() {
    let config = Config::load(None, []).unwrap();
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir(), PathBuf::from("data"));
}

#[test]
fn unknown_key_reports_file_and_line() {
    let file = write("[api]\nlisten = \"127.0.0.1:9000\"\n\n[queue]\ncapacity = 10\nbogus = 1\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains(&format!("{}:6:", file.path().display())), "{error}");
    assert!(error.contains("bogus"), "{error}");
}

/// The shipped example documents every key with its default value.
#[test]
fn example_config_is_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/securewatch.example.toml");
    let example = Config::load(Some(&path), []).unwrap();
    let defaults = Config { data_dir: Some(PathBuf::from("data")), ..Config::default() };
    assert_eq!(example, defaults);
}

#[test]
fn source_rules_are_checked() {
    let file = write("[sources.hec]\nmax_body_bytes = 0\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[sources.hec]") && error.contains("max_body_bytes"), "{error}");
    let file = write("[[sources.hec.tokens]]\nname = \"a\"\ntoken = \"x\"\n[[sources.hec.tokens]]\nname = \"a\"\ntoken = \"y\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("used twice"), "{error}");
}

#[test]
fn enrichment_section_parses_and_is_checked() {
    let file = write(
        "[enrichment]\nassets = \"assets.csv\"\npoll_interval_ms = 250\n\
         [[enrichment.networks]]\nname = \"internal\"\npath = \"internal.txt\"\n",
    );
    let config = Config::load(Some(file.path()), []).unwrap();
    assert_eq!(config.enrichment.assets, Some(PathBuf::from("assets.csv")));
    assert_eq!(config.enrichment.networks[0].name, "internal");
    assert_eq!(config.enrichment.poll_interval_ms, 250);
    assert!(config.enrichment.ip_fields.iter().any(|field| field == "data.srcip"), "default fields");
    let file = write("[[enrichment.networks]]\nname = \"a b\"\npath = \"x.txt\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[enrichment]") && error.contains("a b"), "{error}");
    let file = write("[[enrichment.networks]]\nname = \"a\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains(":1:") && error.contains("path"), "{error}");
}

#[test]
fn optional_components_are_switched_by_enabled_and_old_spellings_warn() {
    let config = Config::load(None, []).unwrap();
    assert!(config.sinks.postgres_in_force().is_none() && config.detection.rules_dir_in_force().is_none());
    assert!(config.deprecations().is_empty());

    let file = write("[detection]\nenabled = true\nrules_dir = \"rules\"\n\n[sinks.postgres]\nenabled = true\n");
    let config = Config::load(Some(file.path()), []).unwrap();
    assert_eq!(config.detection.rules_dir_in_force(), Some(Path::new("rules")));
    assert!(config.sinks.postgres_in_force().is_some());
    assert!(config.deprecations().is_empty(), "{:?}", config.deprecations());

    let file = write("[detection]\nenabled = false\nrules_dir = \"rules\"\n\n[sinks.postgres]\nenabled = false\n");
    let config = Config::load(Some(file.path()), []).unwrap();
    assert!(config.detection.rules_dir_in_force().is_none() && config.sinks.postgres_in_force().is_none());
    assert!(config.deprecations().is_empty());

    // The spellings before the convention keep working for one release, with a warning each.
    let file = write("[detection]\nrules_dir = \"rules\"\n\n[sinks.postgres]\nurl = \"postgres://sw@db/sw\"\n");
    let config = Config::load(Some(file.path()), []).unwrap();
    assert_eq!(config.detection.rules_dir_in_force(), Some(Path::new("rules")));
    assert!(config.sinks.postgres_in_force().is_some());
    let warnings = config.deprecations();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("[detection]") && warnings[1].starts_with("[sinks.postgres]"), "{warnings:?}");

    let file = write("[detection]\nenabled = true\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[detection]") && error.contains("rules_dir: must be set when enabled = true"), "{error}");
}

#[test]
fn sinks_parse_are_checked_and_take_environment_overrides() {
    let config = Config::load(None, []).unwrap();
    assert!(config.sinks.postgres.is_none() && !config.sinks.opensearch.enabled, "both off by default");
    let file = write("[sinks.postgres]\nurl = \"postgres://sw@db:5432/sw\"\nschema = \"events_a\"\n");
    let config = Config::load(Some(file.path()), []).unwrap();
    let postgres = config.sinks.postgres.unwrap();
    assert_eq!((postgres.url.as_str(), postgres.schema.as_deref()), ("postgres://sw@db:5432/sw", Some("events_a")));
    let file = write("[sinks.postgres]\npool_size = 0\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[sinks.postgres]") && error.contains("pool_size"), "{error}");
    let file = write("[sinks.postgres]\nurl = \"http://db\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[sinks.postgres]") && error.contains("url"), "{error}");
    let file = write("[sinks.postgres]\nbogus = 1\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains(":2:") && error.contains("bogus"), "{error}");
    let file = write("[sinks.opensearch]\nenabled = true\nurls = [\"ftp://x\"]\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[sinks.opensearch]") && error.contains("ftp://x"), "{error}");
    let env = [
        ("SECUREWATCH_SINKS__POSTGRES__URL".to_string(), "postgres://env@db/sw".to_string()),
        ("SECUREWATCH_SINKS__POSTGRES__POOL_SIZE".to_string(), "3".to_string()),
        ("SECUREWATCH_SINKS__OPENSEARCH__ENABLED".to_string(), "true".to_string()),
        ("SECUREWATCH_SINKS__OPENSEARCH__URLS".to_string(), "[\"http://os:9200\"]".to_string()),
    ];
    let config = Config::load(None, env).unwrap();
    let postgres = config.sinks.postgres.unwrap();
    assert_eq!((postgres.url.as_str(), postgres.pool_size), ("postgres://env@db/sw", 3));
    assert!(config.sinks.opensearch.enabled);
    assert_eq!(config.sinks.opensearch.urls, ["http://os:9200"]);
    let bad = [("SECUREWATCH_SINKS__POSTGRES__BATCH_ROWS".to_string(), "0".to_string())];
    let error = Config::load(None, bad).unwrap_err().to_string();
    assert!(error.contains("[sinks.postgres]") && error.contains("batch_rows"), "{error}");
}

#[test]
fn log_level_is_checked_with_the_valid_forms() {
    for good in ["info", "DEBUG", "securewatch=debug,info", "warn,securewatch_connectors=trace", "off"] {
        let file = write(&format!("[log]\nlevel = \"{good}\"\n"));
        Config::load(Some(file.path()), []).unwrap_or_else(|error| panic!("{good}: {error}"));
    }
    for bad in ["loud", "", "securewatch=loud", "info,,debug", "3"] {
        let file = write(&format!("[log]\nlevel = \"{bad}\"\n"));
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains("[log]") && error.contains("trace, debug, info, warn, error, off"), "{bad}: {error}");
    }
}

#[test]
fn syslog_with_nothing_to_listen_on_is_refused() {
    let file = write("[sources.syslog]\nudp_listen = \"off\"\ntcp_listen = \"off\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains("[sources.syslog]") && error.contains("nothing to listen on"), "{error}");
    let file = write("[sources.syslog]\nenabled = false\nudp_listen = \"off\"\ntcp_listen = \"off\"\n");
    Config::load(Some(file.path()), []).unwrap();
}

#[test]
fn what_cannot_run_is_refused() {
    // Issue 24 finding 6: each of these passed `config check`.
    let cases = [
        ("[dataflow]\nworkers = 10000\n", "[dataflow]", "workers (10000) must be at most 64"),
        ("[sources.syslog]\nmax_connections = 1000000\n", "[sources.syslog]", "max_connections (1000000) must be at most 65536"),
        ("[journal]\nsegment_mib = 100000\n", "[journal]", "segment_mib (100000) must be at most 1024"),
        ("[store]\nfile = \"../../x.db\"\n", "[store]", "inside the data directory"),
        ("[store]\nfile = \"/tmp/x.db\"\n", "[store]", "inside the data directory"),
        ("[api]\nmax_connections = 100000\n", "[api]", "max_connections (100000) must be at most 65536"),
        ("[api]\nheader_read_timeout_ms = 0\n", "[api]", "header_read_timeout_ms must be at least 1"),
        ("[sources.hec]\nbody_min_bytes_per_sec = 0\n", "[sources.hec]", "body_min_bytes_per_sec must be at least 1"),
    ];
    for (text, section, message) in cases {
        let error = Config::load(Some(write(text).path()), []).unwrap_err().to_string();
        assert!(error.contains(section) && error.contains(message), "{text}: {error}");
    }
    let limits = "[dataflow]\nworkers = 64\n[sources.syslog]\nmax_connections = 65536\n[journal]\nsegment_mib = 1024\n[store]\nfile = \"db/sw.db\"\n";
    Config::load(Some(write(limits).path()), []).unwrap();
}

#[test]
fn wrong_type_and_syntax_errors_are_located() {
    let file = write("[queue]\ncapacity = \"many\"\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains(":2:"), "{error}");
    let file = write("[api\n");
    let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
    assert!(error.contains(":1:"), "{error}");
}

#[test]
fn environment_overrides_apply_and_are_checked() {
    let env = [
        ("SECUREWATCH_API__LISTEN".to_string(), "127.0.0.1:9999".to_string()),
        ("SECUREWATCH_QUEUE__CAPACITY".to_string(), "42".to_string()),
        ("SECUREWATCH_DATA_DIR".to_string(), "/tmp/sw".to_string()),
        ("SECUREWATCH_HEC_TOKEN".to_string(), "ignored-here".to_string()),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let config = Config::load(None, env).unwrap();
    assert_eq!(config.api.listen.port(), 9999);
    assert_eq!(config.queue.capacity, 42);
    assert_eq!(config.data_dir(), PathBuf::from("/tmp/sw"));
    let zero = [("SECUREWATCH_QUEUE__CAPACITY".to_string(), "0".to_string())];
    let error = Config::load(None, zero).unwrap_err().to_string();
    assert!(error.contains("[queue]") && error.contains("capacity"), "{error}");
    let bad = [("SECUREWATCH_QUEUE__NOPE".to_string(), "1".to_string())];
    let error = Config::load(None, bad).unwrap_err().to_string();
    assert!(error.contains("SECUREWATCH_QUEUE__NOPE") && error.contains("nope"), "{error}");
}

#[test]
fn a_store_retention_must_outlast_the_open_buckets() {
    for (retention, accepted) in [(0, true), (300, false), (700, false), (720, true), (86_400, true)] {
        let file = write(&format!("[store]\nretention_secs = {retention}\n"));
        let result = Config::load(Some(file.path()), []);
        assert_eq!(result.is_ok(), accepted, "{retention}: {:?}", result.err().map(|error| error.to_string()));
        if let Err(error) = result {
            assert!(error.to_string().contains("[store]") && error.to_string().contains("retention_secs"), "{error}");
        }
    }
}

#[test]
fn jobs_section_sets_the_limits_and_bad_values_name_their_line() {
    let file = write("[jobs]\nconcurrency_per_tenant = 2\nconcurrency = 4\nrow_cap = 500\nkeep_alive_secs = 60\nresults_max_bytes = 2097152\n");
    let limits = Config::load(Some(file.path()), []).unwrap().jobs.limits();
    assert_eq!((limits.per_tenant, limits.global, limits.row_cap), (2, 4, 500));
    assert_eq!((limits.default_keep_alive.as_secs(), limits.total_bytes, limits.byte_cap), (60, 2 << 20, 2 << 20));
    for (body, wanted) in [
        ("concurrency = 0", "at least 1"),
        ("concurrency_per_tenant = 3\nconcurrency = 2", "above concurrency"),
        ("row_cap = 0", "row_cap = 0"),
        ("keep_alive_secs = 90000", "max_keep_alive_secs"),
        ("results_max_bytes = 1000", "1 MiB"),
        ("rows = 5", "rows"),
    ] {
        let file = write(&format!("[queue]\ncapacity = 10\n\n[jobs]\n{body}\n"));
        let error = Config::load(Some(file.path()), []).unwrap_err().to_string();
        assert!(error.contains(&format!("{}:", file.path().display())) && error.contains(wanted), "{body}: {error}");
        let line: usize = error.split(':').nth(1).and_then(|line| line.parse().ok()).unwrap_or_else(|| panic!("{body}: no line in {error}"));
        assert!(line >= 4, "{body}: the [jobs] table or its key, not line {line}: {error}");
    }
    let error = Config::load(None, [("SECUREWATCH_JOBS__CONCURRENCY".to_owned(), "0".to_owned())]).unwrap_err().to_string();
    assert!(error.contains("environment override") && error.contains("at least 1"), "{error}");
}
