//! Access control through the real binary: the generated admin token, the token CLI against a running server, the audit log, the issue's cross-origin probe, private files.

use std::process::{Command, Output};

use securewatch_tests::instance::{binary, curl, Instance};
use serde_json::Value;

fn securewatch(args: &[&str]) -> Output {
    Command::new(binary()).args(args).env_remove("SECUREWATCH_HEC_TOKEN").output().expect("run securewatch")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tokens_made_by_the_cli_work_at_once_are_audited_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let instance = Instance::start(dir.path(), "", &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let admin = instance.api_token();
    assert!(instance.stdout().contains(&format!("API admin token (generated once, kept in {}", dir.path().join("api_token").display())));
    assert!(instance.stdout().contains(&admin) && admin.len() == 68, "printed once at the first start");
    let data_dir = dir.path().to_str().unwrap();

    // Without a token: 401 with the challenge; the probes stay open.
    let events = instance.api_url("/api/v1/events");
    let (status, body) = curl(&["-H", "Authorization: Basic x", "-i", &events]).unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.to_ascii_lowercase().contains("www-authenticate: bearer realm=\"securewatch\""), "{body}");
    for probe in ["/api/v1/health/live", "/api/v1/health/ready"] {
        let (status, body) = curl(&["-H", "Authorization: none", &instance.api_url(probe)]).unwrap();
        assert_eq!((status, body.as_str()), (200, ""), "{probe}");
    }

    let created = securewatch(&["token", "create", "--name", "grafana", "--role", "viewer", "--tenant", "acme", "--data-dir", data_dir]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let grafana = text(&created.stdout).trim().to_string();
    assert!(grafana.starts_with("swt_") && grafana.len() == 68, "{grafana}");
    let bearer = format!("Authorization: Bearer {grafana}");
    let (status, _) = curl(&["-H", &bearer, &events]).unwrap();
    assert_eq!(status, 200, "a new token works at once");
    let (status, body) = curl(&["-X", "POST", "-H", &bearer, &instance.api_url("/api/v1/rules/reload")]).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("missing permission rules:write"), "{body}");

    let listed = securewatch(&["token", "list", "--data-dir", data_dir]);
    let listed = text(&listed.stdout);
    assert!(listed.contains("grafana") && listed.contains("viewer") && listed.contains("acme"), "{listed}");
    assert!(!listed.contains(&grafana) && !listed.contains(&admin), "{listed}");
    let file = std::fs::read_to_string(dir.path().join("api_tokens.json")).unwrap();
    assert!(!file.contains(&grafana), "only the hash is stored");

    let revoked = securewatch(&["token", "revoke", "--name", "grafana", "--data-dir", data_dir]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(curl(&["-H", &bearer, &events]).unwrap().0, 401, "revoked within a second");

    // The audit log has the CLI's changes, the refused reload and the refused credentials.
    let (status, body) = curl(&[&instance.api_url("/api/v1/audit?limit=100")]).unwrap();
    assert_eq!(status, 200, "{body}");
    let audit: Vec<Value> = serde_json::from_str(&body).unwrap();
    let has = |action: &str, outcome: &str, detail: &str| {
        audit.iter().any(|entry| entry["action"] == action && entry["outcome"] == outcome && entry["detail"].as_str().unwrap().contains(detail))
    };
    assert!(has("tokens:write", "ok", "created; roles viewer; tenants acme"), "{audit:#?}");
    assert!(has("tokens:write", "ok", "revoked"), "{audit:#?}");
    assert!(has("rules:write", "refused", "missing permission rules:write"), "{audit:#?}");
    assert!(has("authenticate", "refused", "missing credential"), "{audit:#?}");
    assert!(has("authenticate", "refused", "unknown API token"), "{audit:#?}");
    assert!(audit.iter().any(|entry| entry["identity"] == "grafana" && entry["tenant"] == "acme"), "{audit:#?}");
    let stderr = instance.stderr();
    assert!(stderr.contains("securewatch::audit") && !stderr.contains(&grafana) && !stderr.contains(&admin), "no token in the log");
}

/// The probe of issue 17: a cross-origin form POST reloaded the rules (200).
#[test]
fn the_cross_origin_form_post_of_the_issue_no_longer_reloads_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let config = format!("[detection]\nenabled = true\nrules_dir = \"{}\"\n", rules.display());
    let instance = Instance::start(dir.path(), &config, &[("SECUREWATCH_HEC_TOKEN", "t")]).unwrap();
    let reload = instance.api_url("/api/v1/rules/reload");
    let probe = |extra: &[&str]| {
        let mut args = vec!["-X", "POST", "-H", "Origin: http://evil.example", "-H", "Content-Type: application/x-www-form-urlencoded", "-d", "a=b"];
        args.extend_from_slice(extra);
        args.push(&reload);
        curl(&args).unwrap()
    };
    let (status, body) = probe(&["-H", "Authorization: none"]);
    assert_eq!(status, 415, "{body}");
    let (status, body) = probe(&[]);
    assert_eq!(status, 415, "even with the admin token: {body}");
    let (status, body) = curl(&["-X", "POST", &reload]).unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl(&["-H", "Host: evil.example", &instance.api_url("/api/v1/events")]).unwrap();
    assert_eq!(status, 421, "DNS rebinding: a foreign Host name");
}

#[cfg(unix)]
#[test]
fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let instance = Instance::start(&data, "", &[]).unwrap();
    drop(instance);
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for name in ["securewatch.db", "api_token", "api_tokens.json", "hec_token"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let journal = data.join("journal");
    assert_eq!(mode(&journal), 0o700);
    for entry in std::fs::read_dir(&journal).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
    }
}

#[test]
fn config_check_refuses_short_api_tokens_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.toml");
    std::fs::write(&file, "[[api.auth.tokens]]\nname = \"ci\"\ntoken = \"hunter2-hunter2\"\nroles = [\"viewer\"]\n").unwrap();
    let output = securewatch(&["config", "check", file.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("at least 32 characters (this one has 15)") && !stderr.contains("hunter2"), "{stderr}");
    std::fs::write(&file, "[api]\nlisten = \"0.0.0.0:8080\"\n[api.auth]\nmode = \"off\"\n").unwrap();
    let output = securewatch(&["config", "check", file.to_str().unwrap()]);
    assert!(!output.status.success() && text(&output.stderr).contains("mode = \"off\""), "{}", text(&output.stderr));
}
