//! The README's examples, run as written: its `sh` blocks from "Try it" on, in order, against a real `securewatch run`.
//!
//! A newcomer follows the README literally, so the check does too: it starts `securewatch run`
//! in a scratch directory (the README's own first command, on free ports given through the
//! `SECUREWATCH_*` overrides), then runs every `sh` block in `bash -euo pipefail` from that
//! directory with only the default ports rewritten. Markers and neighbours of a block:
//!
//! - `<!-- check: restart -->` before a block: stop the instance (SIGTERM, as Ctrl-C) and start
//!   the block's command as the new instance;
//! - `<!-- check: kubernetes -->` before a block: it needs a Kubernetes cluster, so it is not run;
//!   every `kubectl apply -k DIR` in it must name a kustomization of the repository (which
//!   `deploy/kubernetes/check.py` renders and validates in tests/run.sh);
//! - a `text` block right after a block: each of its lines must appear in the block's output.
//!
//! Shell variables a block assigns (`TOKEN=$(cat data/hec_token)`) are kept for the blocks
//! after it, as in the reader's terminal.
//!
//! HEC answers in any output must be `Success`. At the end the events must be stored, every one
//! counted in the dashboard answers, and the README's rule must have fired (its `text` block).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use securewatch_tests::instance::{binary, curl, register_api_token_of, Ports};
use serde_json::Value;

/// One `sh` block of the README and what the check does with it.
#[derive(Debug)]
struct Block {
    code: String,
    restart: bool,
    /// Needs a Kubernetes cluster (`<!-- check: kubernetes -->`): checked, not run.
    cluster: bool,
    expected: Vec<String>,
    /// The README line the block starts on, for messages.
    line: usize,
}

/// The `sh` blocks from the `## Try it` heading on, with their markers and expected output.
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let start = lines.iter().position(|line| *line == "## Try it").expect("the README has a \"Try it\" section");
    let mut blocks: Vec<Block> = Vec::new();
    let mut restart = false;
    let mut cluster = false;
    let mut index = start;
    while index < lines.len() {
        let line = lines[index];
        if line.trim() == "<!-- check: restart -->" {
            restart = true;
        } else if line.trim() == "<!-- check: kubernetes -->" {
            cluster = true;
        } else if let Some(info) = line.strip_prefix("```") {
            let body_start = index + 1;
            let end = (body_start..lines.len()).find(|&i| lines[i].starts_with("```")).expect("closed fence");
            let body: Vec<&str> = lines[body_start..end].to_vec();
            match info.trim() {
                "sh" => blocks.push(Block { code: body.join("\n"), restart, cluster, expected: Vec::new(), line: index + 1 }),
                "text" => {
                    let previous = blocks.last_mut().expect("a text block follows a sh block");
                    previous.expected = body.iter().map(|line| line.to_string()).filter(|line| !line.is_empty()).collect();
                }
                _ => {}
            }
            restart = false;
            cluster = false;
            index = end;
        } else if !line.trim().is_empty() {
            restart = false;
            cluster = false;
        }
        index += 1;
    }
    blocks
}

/// The lines of `code` that assign a shell variable (`NAME=...`).
fn assignments(code: &str) -> impl Iterator<Item = &str> {
    code.lines().filter(|line| {
        line.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

/// The README's default addresses replaced by this run's ports.
fn with_ports(code: &str, ports: Ports) -> String {
    code.replace("127.0.0.1:8088", &format!("127.0.0.1:{}", ports.hec))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.api))
        .replace("--port 5514", &format!("--port {}", ports.syslog))
}

/// A command run in the scratch directory, as the reader's shell would: the binary on `PATH`,
/// the ports of this run in the environment overrides.
fn command(program: &str, scratch: &Path, ports: Ports) -> Command {
    let bin_dir = binary().parent().expect("binary directory").to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut command = Command::new(program);
    command
        .current_dir(scratch)
        .env("PATH", path)
        .env_remove("SECUREWATCH_HEC_TOKEN")
        .env("RUST_LOG", "info")
        .env("SECUREWATCH_API__LISTEN", format!("127.0.0.1:{}", ports.api))
        .env("SECUREWATCH_SOURCES__HEC__LISTEN", format!("127.0.0.1:{}", ports.hec))
        .env("SECUREWATCH_SOURCES__SYSLOG__UDP_LISTEN", format!("127.0.0.1:{}", ports.syslog))
        .env("SECUREWATCH_SOURCES__SYSLOG__TCP_LISTEN", format!("127.0.0.1:{}", ports.syslog));
    command
}

/// The running instance: started from a shell command line, stopped with SIGTERM.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(command_line: &str, scratch: &Path, ports: Ports, number: usize) -> Running {
        let log = scratch.join(format!("instance-{number}.log"));
        let output = std::fs::File::create(&log).unwrap();
        let child = command("bash", scratch, ports)
            .arg("-c")
            .arg(format!("exec {command_line}"))
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start securewatch");
        let mut running = Running { child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("`{command_line}` exited ({status}):\n{}", running.output());
            }
            if let Ok((200, _)) = curl(&[&format!("http://127.0.0.1:{}/api/v1/health/ready", ports.api)]) {
                register_api_token_of(ports.api, &scratch.join("data")).expect("the generated API token");
                return running;
            }
            assert!(Instant::now() < deadline, "`{command_line}` did not become ready:\n{}", running.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (what Ctrl-C does) and a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "securewatch exited with {status}:\n{}", self.output());
                return;
            }
            assert!(Instant::now() < deadline, "securewatch did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(ports: Ports, path: &str) -> Value {
    let (status, body) = curl(&[&format!("http://127.0.0.1:{}{path}", ports.api)]).unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn stored_events(ports: Ports) -> Vec<Value> {
    get(ports, "/api/v1/events?limit=10000").as_array().cloned().unwrap_or_default()
}

/// Waits until the number of stored events holds still (syslog and the tailer are not
/// acknowledged to the sender, so a reader cannot wait for an answer).
fn settle(ports: Ports) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last, mut still) = (usize::MAX, 0);
    while Instant::now() < deadline && still < 4 {
        let count = stored_events(ports).len();
        still = if count == last { still + 1 } else { 0 };
        last = count;
        std::thread::sleep(Duration::from_millis(250));
    }
    last
}

/// Every HEC answer in `output` is a success.
fn assert_hec_answers_succeed(output: &str, block: &Block) {
    for (at, _) in output.match_indices("{\"text\":") {
        assert!(
            output[at..].starts_with("{\"text\":\"Success\",\"code\":0}"),
            "README line {}: HEC refused the example:\n{output}",
            block.line
        );
    }
}

/// The kustomizations a cluster-only block applies are the repository's own.
fn assert_kustomizations_exist(block: &Block) {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let applied: Vec<&str> = block
        .code
        .lines()
        .filter_map(|line| line.trim().strip_prefix("kubectl apply -k "))
        .map(str::trim)
        .collect();
    assert!(!applied.is_empty(), "README line {}: a Kubernetes block applies no kustomization", block.line);
    for directory in applied {
        assert!(
            repository.join(directory).join("kustomization.yaml").is_file(),
            "README line {}: {directory} is not a kustomization of the repository",
            block.line
        );
    }
}

#[test]
fn readme_examples_work_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    assert!(
        readme.contains("cargo run --release -p securewatch -- run"),
        "the quick start's first command is the one this check starts"
    );
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 10, "found only {} sh blocks after \"Try it\"", blocks.len());
    for default in ["127.0.0.1:8088", "127.0.0.1:8080", "--port 5514"] {
        assert!(blocks.iter().any(|block| block.code.contains(default)), "no example uses {default}");
    }

    let scratch = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    // The quick start's `cargo run --release -p securewatch -- run`, with the built binary.
    let mut running = Running::start("securewatch run", scratch.path(), ports, 0);
    assert!(running.output().contains("HEC token (generated once"), "{}", running.output());
    assert!(running.output().contains("API admin token (generated once"), "{}", running.output());
    let mut session = String::new(); // the variables of the reader's terminal
    for block in &blocks {
        if block.cluster {
            assert_kustomizations_exist(block);
            continue;
        }
        let code = with_ports(&block.code, ports);
        if block.restart {
            settle(ports);
            running.stop();
            running = Running::start(code.trim(), scratch.path(), ports, block.line);
            continue;
        }
        if code.contains("/api/v1/") {
            settle(ports);
        }
        let output = command("bash", scratch.path(), ports)
            .arg("-euo")
            .arg("pipefail")
            .arg("-c")
            .arg(format!("{session}{code}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "README line {}: the example failed ({}):\n{code}\nstdout:\n{stdout}\nstderr:\n{}",
            block.line,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_hec_answers_succeed(&stdout, block);
        for line in assignments(&code) {
            session.push_str(line);
            session.push('\n');
        }
        for expected in &block.expected {
            assert!(stdout.contains(expected.as_str()), "README line {}: {expected:?} not in the output:\n{stdout}", block.line);
        }
    }

    // Events in: every example's events are stored, Wazuh's included.
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = stored_events(ports);
        let kinds: Vec<&str> = events.iter().filter_map(|event| event["source"]["kind"].as_str()).collect();
        if ["hec", "syslog", "wazuh"].iter().all(|kind| kinds.contains(kind)) || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let count = |kind: &str| events.iter().filter(|event| event["source"]["kind"] == kind).count();
    assert_eq!((count("hec"), count("syslog"), count("wazuh")), (5, 5, 1), "{events:#?}");

    // The same events in the dashboard answers: all of them counted in the last hour, none late.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let series = get(ports, "/api/v1/dashboards/timeseries?by=source&bucket=1m");
        let counted: u64 = series["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|series| series["points"].as_array().unwrap().iter())
            .map(|point| point["count"].as_u64().unwrap())
            .sum();
        if counted == events.len() as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "the dashboards count {counted} of {} events: {series}", events.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    running.stop();
}

#[test]
fn variable_assignments_are_found() {
    let code = "TOKEN=$(cat data/hec_token)\ncurl -s -d 'a=b' x\n2X=1\nA_1=2";
    assert_eq!(assignments(code).collect::<Vec<_>>(), ["TOKEN=$(cat data/hec_token)", "A_1=2"]);
}

/// The parser itself: markers, expected output and the fences it ignores.
#[test]
fn readme_blocks_are_read_with_their_markers() {
    let text = "# x\n```sh\nnot in Try it\n```\n## Try it\n```sh\na\n```\n\n```text\nout\n```\n\
                <!-- check: restart -->\n```sh\nsecurewatch run\n```\n```\ndiagram\n```\n```sh\nb\n```\n\
                <!-- check: kubernetes -->\n```sh\nkubectl apply -k k\n```\n```sh\nc\n```\n";
    let blocks = blocks(text);
    let summary: Vec<(&str, bool, bool, Vec<String>)> =
        blocks.iter().map(|block| (block.code.as_str(), block.restart, block.cluster, block.expected.clone())).collect();
    assert_eq!(
        summary,
        [
            ("a", false, false, vec!["out".to_string()]),
            ("securewatch run", true, false, vec![]),
            ("b", false, false, vec![]),
            ("kubectl apply -k k", false, true, vec![]),
            ("c", false, false, vec![]),
        ]
    );
}

/// The `toml` blocks of a Markdown text, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].trim() == "```toml" {
            let end = (index + 1..lines.len()).find(|&i| lines[i].trim_start().starts_with("```")).expect("closed fence");
            let indent = lines[index].len() - lines[index].trim_start().len();
            let body: Vec<&str> = lines[index + 1..end].iter().map(|line| line.get(indent..).unwrap_or(line.trim_start())).collect();
            blocks.push((index + 1, body.join("\n")));
            index = end;
        }
        index += 1;
    }
    blocks
}

/// The configuration examples of the README and of docs/ cannot all run here (Kafka clusters,
/// OpenSearch), but each is a valid configuration as written: `config check` accepts it, without
/// a deprecation warning.
#[test]
fn config_examples_in_the_readme_and_docs_pass_config_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut documents = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> =
        std::fs::read_dir(root.join("docs")).unwrap().map(|entry| entry.unwrap().path()).collect();
    docs.sort();
    documents.extend(docs.into_iter().filter(|path| path.extension().is_some_and(|ext| ext == "md")));
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for document in &documents {
        for (line, block) in toml_blocks(&std::fs::read_to_string(document).unwrap()) {
            let file = scratch.path().join(format!("example-{checked}.toml"));
            std::fs::write(&file, &block).unwrap();
            let output = Command::new(binary()).args(["config", "check"]).arg(&file).output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let place = format!("{}:{line}", document.strip_prefix(&root).unwrap().display());
            assert!(output.status.success(), "{place}: config check refused the example:\n{stderr}{stdout}");
            assert!(!stdout.contains("warning:"), "{place}: the example uses a deprecated spelling:\n{stdout}");
            checked += 1;
        }
    }
    assert!(checked >= 9, "found only {checked} toml examples: the extraction is broken");
}

#[test]
fn toml_blocks_are_found_with_their_lines() {
    let text = "# x\n```toml\n[a]\nb = 1\n```\n```sh\nnot toml\n```\n```toml\n[c]\n```\n";
    assert_eq!(toml_blocks(text), vec![(2, "[a]\nb = 1".to_string()), (9, "[c]".to_string())]);
}
