//! A running `securewatch run` process on free loopback ports, driven with real clients.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::collections::HashMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// The `securewatch` binary: `$SECUREWATCH_BIN`, else `target/debug/securewatch`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SECUREWATCH_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/securewatch")
}

/// The API token of each running API by its loopback port: [`curl`] sends it to that port.
static API_TOKENS: Mutex<Option<HashMap<u16, String>>> = Mutex::new(None);

/// The file in a data directory holding the admin API token `securewatch run` generates.
pub const API_TOKEN_FILE: &str = "api_token";

/// Makes [`curl`] send `Authorization: Bearer <token>` to the API on `port` (loopback), unless
/// a call gives its own `Authorization` header.
pub fn register_api_token(port: u16, token: &str) {
    let mut tokens = API_TOKENS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tokens.get_or_insert_with(HashMap::new).insert(port, token.trim().to_string());
}

/// Reads the admin API token the server generated in `data_dir` and registers it for `port`.
pub fn register_api_token_of(port: u16, data_dir: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(data_dir.join(API_TOKEN_FILE))
        .with_context(|| format!("no API token in {}", data_dir.display()))?;
    register_api_token(port, &token);
    Ok(token.trim().to_string())
}

/// The API token registered for the API a URL in `args` names, if any.
fn api_token_for(args: &[&str]) -> Option<String> {
    if args.iter().any(|arg| arg.to_ascii_lowercase().starts_with("authorization:")) {
        return None;
    }
    let tokens = API_TOKENS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let tokens = tokens.as_ref()?;
    args.iter().find_map(|arg| {
        let rest = arg.strip_prefix("http://127.0.0.1:")?;
        let port: u16 = rest.split(['/', '?']).next()?.parse().ok()?;
        tokens.get(&port).cloned()
    })
}

/// A port free for TCP and UDP, with the sockets that hold it until they are dropped, so that
/// several ports chosen together are distinct.
fn reserve_port() -> (u16, TcpListener, UdpSocket) {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("local address").port();
        if let Ok(udp) = UdpSocket::bind(("127.0.0.1", port)) {
            return (port, tcp, udp);
        }
    }
}

/// A free loopback TCP port (e.g. for a timely peer address).
pub fn free_port() -> u16 {
    reserve_port().0
}

/// Ports of one instance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub hec: u16,
    pub syslog: u16,
    pub api: u16,
}

impl Ports {
    /// Three distinct free ports (all held until chosen, then released for the server).
    pub fn free() -> Ports {
        let (hec, syslog, api) = (reserve_port(), reserve_port(), reserve_port());
        Ports { hec: hec.0, syslog: syslog.0, api: api.0 }
    }
}

/// A `securewatch run` child process; killed on drop.
pub struct Instance {
    pub child: Child,
    pub ports: Ports,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub stdout_path: PathBuf,
}

/// The config file for `ports` plus `extra` TOML appended (e.g. a `[sources.wazuh]` table).
pub fn config_text(ports: Ports, extra: &str) -> String {
    format!(
        "[api]\nlisten = \"127.0.0.1:{api}\"\n\n[sources.hec]\nlisten = \"127.0.0.1:{hec}\"\n\n\
         [sources.syslog]\nudp_listen = \"127.0.0.1:{syslog}\"\ntcp_listen = \"127.0.0.1:{syslog}\"\n\n{extra}\n",
        api = ports.api,
        hec = ports.hec,
        syslog = ports.syslog,
    )
}

impl Instance {
    /// Starts the binary with a config for free ports and waits until the API answers.
    pub fn start(data_dir: &Path, extra_config: &str, env: &[(&str, &str)]) -> anyhow::Result<Instance> {
        Instance::start_with_ports(data_dir, Ports::free(), extra_config, env)
    }

    /// Like [`Instance::start`] with given ports (to restart on the same ports).
    pub fn start_with_ports(
        data_dir: &Path,
        ports: Ports,
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        Instance::start_role("run", data_dir, ports, extra_config, env)
    }

    /// Starts `securewatch <role>` (`run`, `ingest` or `worker`) like [`Instance::start_with_ports`].
    pub fn start_role(
        role: &str,
        data_dir: &Path,
        ports: Ports,
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        std::fs::create_dir_all(data_dir)?;
        let config_path = data_dir.join("securewatch.toml");
        std::fs::File::create(&config_path)?.write_all(config_text(ports, extra_config).as_bytes())?;
        let stdout_path = data_dir.join(format!("stdout-{}.log", Instant::now().elapsed().as_nanos()));
        let stdout = std::fs::File::create(&stdout_path)?;
        let stderr = std::fs::File::create(data_dir.join("stderr.log"))?;
        let mut command = Command::new(binary());
        command
            .arg(role)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(stdout)
            .stderr(stderr)
            .env_remove("SECUREWATCH_HEC_TOKEN")
            .env("RUST_LOG", "info");
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().with_context(|| format!("cannot start {}", binary().display()))?;
        let mut instance = Instance { child, ports, data_dir: data_dir.to_path_buf(), config_path, stdout_path };
        instance.wait_ready()?;
        Ok(instance)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("securewatch exited early ({status}); stderr:\n{}", self.stderr());
            }
            if let Ok((200, _)) = curl(&[&self.api_url("/api/v1/health/ready")]) {
                register_api_token_of(self.ports.api, &self.data_dir)?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("securewatch did not become ready; stderr:\n{}", self.stderr())
    }

    /// The process's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("stderr.log")).unwrap_or_default()
    }

    /// The process's stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// `http://127.0.0.1:<api>/<path>`.
    pub fn api_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.api)
    }

    /// The value of the `/metrics` sample `name` with every label of `labels` (0 when absent).
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = curl(&[&self.api_url("/metrics")]).unwrap();
        let prefix = format!("{name}{{");
        text.lines()
            .filter(|line| line.starts_with(&prefix))
            .find(|line| labels.iter().all(|label| line.contains(label)))
            .and_then(|line| line.rsplit_once(' '))
            .map_or(0.0, |(_, value)| value.parse().unwrap())
    }

    /// `http://127.0.0.1:<hec>/<path>`.
    pub fn hec_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.hec)
    }

    /// The syslog address.
    pub fn syslog_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.syslog))
    }

    /// `GET /api/v1/events?<query>` as JSON.
    pub fn events(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let (status, body) = curl(&[&self.api_url(&format!("/api/v1/events?{query}"))])?;
        if status != 200 {
            bail!("events query answered {status}: {body}");
        }
        let value: Value = serde_json::from_str(&body)?;
        Ok(value.as_array().cloned().unwrap_or_default())
    }

    /// Polls `events(query)` until `count` events are there (or the deadline passes).
    pub fn wait_events(&self, query: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events(query)?;
            if events.len() >= count || Instant::now() > deadline {
                return Ok(events);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process with SIGKILL (a crash) and waits for it.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> anyhow::Result<ExitStatus> {
        self.send_term()?;
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting (the processes of a cluster stop together).
    pub fn send_term(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// Waits up to 30 s for the process to exit.
    pub fn wait_exit(mut self) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("securewatch did not exit within 30 s of SIGTERM")
    }
}

impl Instance {
    /// The admin API token of this instance (generated on its first start).
    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join(API_TOKEN_FILE)).unwrap_or_default().trim().to_string()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `curl -sS` with `args`, returning the HTTP status and the body. A call to the API of a
/// running instance carries its admin token (see [`register_api_token`]) unless it sets its own
/// `Authorization` header.
pub fn curl(args: &[&str]) -> anyhow::Result<(u16, String)> {
    let authorization = api_token_for(args).map(|token| format!("Authorization: Bearer {token}"));
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"]);
    if let Some(header) = &authorization {
        command.args(["-H", header]);
    }
    let output = command
        .args(args)
        .output()
        .context("cannot run curl")?;
    if !output.status.success() {
        bail!("curl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').context("curl printed no status")?;
    Ok((status.trim().parse()?, body.to_string()))
}

/// Posts `body` to the HEC `url` with `token` through curl's standard input; `true` when HEC
/// answered 200 (a refused or failed request is `false`, for the caller to count or retry).
pub fn post_hec(url: &str, token: &str, body: &[u8]) -> bool {
    let child = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-H"])
        .arg(format!("Authorization: Splunk {token}"))
        .args(["--data-binary", "@-", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if child.stdin.take().expect("stdin").write_all(body).is_err() {
        let _ = child.wait();
        return false;
    }
    child.wait_with_output().is_ok_and(|output| output.stdout == b"200")
}

/// Runs `logger` with `args`, failing when it fails.
pub fn logger(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("logger").args(args).output().context("cannot run logger")?;
    if !output.status.success() {
        bail!("logger {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}
