//! Throw-away certificates made with the `openssl` CLI at test time, and the real TLS clients: `openssl s_client`, rsyslog, syslog-ng.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A test PKI in one directory: a CA, certificates it signed, and their keys (never committed;
/// made for each test run).
pub struct Pki {
    pub dir: PathBuf,
}

/// A certificate file and its key file.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl").args(args).output().context("cannot run openssl")?;
    if !output.status.success() {
        bail!("openssl {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

impl Pki {
    /// A CA named `name` (`<dir>/<name>-ca.pem`) in `dir`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let pki = Pki { dir: dir.to_path_buf() };
        let (cert, key) = (pki.ca_name(name), dir.join(format!("{name}-ca.key")));
        openssl(&[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", &format!("/CN={name} test CA"), "-keyout", path(&key), "-out", path(&cert),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        Ok(pki)
    }

    fn ca_name(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// The CA certificate of the CA named `name`.
    pub fn ca(&self, name: &str) -> PathBuf {
        self.ca_name(name)
    }

    /// A certificate for `file` (`<file>.pem`, `<file>.key`) signed by the CA `ca`, with
    /// `subject` (e.g. `/CN=relay/O=Example`) and subjectAltNames `sans` (e.g. `DNS:localhost`).
    pub fn issue(&self, ca: &str, file: &str, subject: &str, sans: &[&str]) -> anyhow::Result<Issued> {
        let (cert, key, csr) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}.key")), self.dir.join(format!("{file}.csr")));
        let extensions = self.dir.join(format!("{file}.ext"));
        let mut text = String::from("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n");
        if !sans.is_empty() {
            text.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(&extensions, text)?;
        openssl(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject, "-keyout", path(&key), "-out", path(&csr)])?;
        let ca_key = self.dir.join(format!("{ca}-ca.key"));
        openssl(&[
            "x509", "-req", "-in", path(&csr), "-CA", path(&self.ca_name(ca)), "-CAkey", path(&ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", path(&extensions), "-out", path(&cert),
        ])?;
        Ok(Issued { cert, key })
    }

    /// The SHA-256 fingerprint of a certificate file as rsyslog writes it (`SHA256:AB:…`).
    pub fn fingerprint(cert: &Path) -> anyhow::Result<String> {
        let output = Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in", path(cert)]).output()?;
        let text = String::from_utf8(output.stdout)?;
        let hex = text.trim().rsplit_once('=').context("no fingerprint")?.1;
        Ok(format!("SHA256:{hex}"))
    }
}

/// A path as `&str` (test paths are UTF-8).
pub fn path(path: &Path) -> &str {
    path.to_str().expect("UTF-8 test path")
}

/// What `openssl s_client` saw: whether it got through, and what it printed.
#[derive(Debug)]
pub struct SClient {
    /// The certificate subject the server presented (`subject=CN = …` line).
    pub server_subject: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

/// Connects with `openssl s_client` to `127.0.0.1:port` trusting `ca`, with `client` as its
/// certificate, writes `payload`, then closes. `extra` adds options (e.g. `-tls1_1`).
pub fn s_client(port: u16, ca: &Path, client: Option<&Issued>, payload: &[u8], extra: &[&str]) -> anyhow::Result<SClient> {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost", "-CAfile", path(ca)]);
    command.arg("-verify_return_error");
    if let Some(client) = client {
        command.args(["-cert", path(&client.cert), "-key", path(&client.key)]);
    }
    command.args(extra).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().context("cannot run openssl s_client")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(payload)?;
    // TLS 1.3 reports a refused client certificate after the handshake: give it time to arrive.
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let output = wait_output(child, Duration::from_secs(20))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let server_subject = stdout.lines().find_map(|line| line.strip_prefix("subject=")).map(|subject| subject.trim().to_string());
    Ok(SClient { server_subject, stdout, stderr: String::from_utf8_lossy(&output.stderr).into_owned() })
}

fn wait_output(mut child: Child, limit: Duration) -> anyhow::Result<std::process::Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// A log relay (rsyslog or syslog-ng) running in the foreground; killed on drop.
pub struct Relay {
    child: Child,
    pub log: PathBuf,
}

impl Relay {
    /// What the relay wrote to its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it holds or `limit` passes.
fn wait_until(limit: Duration, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// rsyslog (`rsyslogd -n`, the `ossl` driver of `rsyslog-openssl`) receiving plain syslog on
/// UDP `input_port` and forwarding it with `omfwd` over TLS (`StreamDriverMode=1`,
/// `StreamDriverAuthMode=x509/name`, octet counting) to `127.0.0.1:tls_port`, presenting
/// `client`.
pub fn rsyslog(dir: &Path, input_port: u16, tls_port: u16, ca: &Path, client: &Issued) -> anyhow::Result<Relay> {
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work)?;
    let config = format!(
        r#"global(workDirectory="{work}" defaultNetstreamDriver="ossl"
       defaultNetstreamDriverCAFile="{ca}" defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{input_port}")
action(type="omfwd" target="127.0.0.1" port="{tls_port}" protocol="tcp" TCP_Framing="octet-counted"
       StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost")
"#,
        work = path(&work),
        ca = path(ca),
        cert = path(&client.cert),
        key = path(&client.key),
    );
    let config_path = work.join("rsyslog.conf");
    std::fs::write(&config_path, config)?;
    let log = work.join("rsyslogd.log");
    let child = Command::new("rsyslogd")
        .args(["-n", "-f", path(&config_path), "-i", path(&work.join("rsyslogd.pid"))])
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("rsyslogd.err"))?)
        .spawn()
        .context("cannot run rsyslogd (Debian packages rsyslog and rsyslog-openssl)")?;
    let relay = Relay { child, log: work.join("rsyslogd.err") };
    // imudp binds at start; the pid file is written once it runs.
    wait_until(Duration::from_secs(10), || work.join("rsyslogd.pid").exists());
    Ok(relay)
}

/// syslog-ng (unpacked from the Debian package into `$SECUREWATCH_TEST_SYSLOG_NG`, see
/// tests/run.sh) receiving plain syslog on UDP `input_port` and forwarding it with its
/// `syslog()` destination over `tls()` (RFC 5425 framing) to `localhost:tls_port`, verifying the
/// server (`peer-verify(required-trusted)`) and presenting `client`. `None` when it is not there.
pub fn syslog_ng(dir: &Path, input_port: u16, tls_port: u16, ca: &Path, client: &Issued) -> anyhow::Result<Option<Relay>> {
    let Some(root) = std::env::var_os("SECUREWATCH_TEST_SYSLOG_NG").map(PathBuf::from) else {
        return Ok(None);
    };
    let work = dir.join("syslog-ng");
    std::fs::create_dir_all(&work)?;
    let config = format!(
        r#"@version: 3.38
options {{ keep-hostname(yes); time-reopen(1); }};
source s_in {{ network(ip("127.0.0.1") port({input_port}) transport("udp")); }};
destination d_tls {{
  syslog("localhost" port({tls_port}) transport("tls")
    tls(ca-file("{ca}") cert-file("{cert}") key-file("{key}") peer-verify(required-trusted)));
}};
log {{ source(s_in); destination(d_tls); }};
"#,
        ca = path(ca),
        cert = path(&client.cert),
        key = path(&client.key),
    );
    let config_path = work.join("syslog-ng.conf");
    std::fs::write(&config_path, config)?;
    let log = work.join("syslog-ng.log");
    let child = Command::new(root.join("usr/sbin/syslog-ng"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .arg("-F")
        .arg("--no-caps")
        .arg(format!("--module-path={}", path(&root.join("usr/lib/syslog-ng/3.38"))))
        .arg(format!("--cfgfile={}", path(&config_path)))
        .arg(format!("--persist-file={}", path(&work.join("syslog-ng.persist"))))
        .arg(format!("--pidfile={}", path(&work.join("syslog-ng.pid"))))
        .arg(format!("--control={}", path(&work.join("syslog-ng.ctl"))))
        .arg("--stderr")
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.join("syslog-ng.err"))?)
        .spawn()
        .context("cannot run syslog-ng")?;
    let relay = Relay { child, log: work.join("syslog-ng.err") };
    wait_until(Duration::from_secs(10), || work.join("syslog-ng.pid").exists());
    Ok(Some(relay))
}
