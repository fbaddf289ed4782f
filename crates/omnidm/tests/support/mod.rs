//! Shared harness of the end-to-end tests: a temporary data directory, the real `omnidm serve`
//! process on loopback ports, the CLI and the simulator.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_omnidm");

/// A temporary data directory, removed on drop.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("omnidm-e2e-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The server refuses a data directory other users can enter (issue 8 item 4).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        DataDir(dir)
    }
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `omnidm serve` on `data` with both listeners on free loopback ports.
pub fn serve_command(data: &DataDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "serve",
        "--data-dir",
        data.path(),
        "--dm-listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
    ]);
    cmd
}

/// A running `omnidm serve`.
pub struct Server {
    pub child: Child,
    pub dm: SocketAddr,
    pub api: SocketAddr,
}

impl Server {
    pub fn start(data: &DataDir) -> Server {
        Server::start_with(data, &[])
    }

    pub fn start_with(data: &DataDir, extra: &[&str]) -> Server {
        Server::start_env(data, extra, &[])
    }

    /// Like [`Server::start_with`], with extra environment variables for the server.
    pub fn start_env(data: &DataDir, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = serve_command(data);
        cmd.args(extra).envs(env.iter().copied());
        Server::spawn(cmd)
    }

    /// Starts `cmd` (an `omnidm serve` command line) and waits until it listens.
    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .env("OMNIDM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let (dm, api) = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("server exited before listening:\n{}", seen.join("\n"));
            };
            if line.contains("omnidm listening") {
                let field = |name: &str| -> SocketAddr {
                    let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
                    line[start..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                };
                break (field("dm"), field("api"));
            }
            seen.push(line);
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, dm, api }
    }

    pub fn dm_url(&self) -> String {
        format!("http://{}/dm", self.dm)
    }

    /// SIGKILL: a crash, nothing gets a chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful stop exits 0: {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn omnidm(data: &DataDir, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--data-dir", data.path()])
        .output()
        .unwrap()
}

pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `omnidm sim` (no --data-dir: the simulator has no store). The devices' state file (their
/// nonces between runs) goes to a directory of this test process, never the user's home.
pub fn sim(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sim")
        .args(args)
        .arg("--no-progress")
        .env("OMNIDM_SIM_STATE_DIR", sim_state_dir())
        .output()
        .unwrap()
}

/// Where `sim` keeps the simulated devices' state in this test process.
pub fn sim_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("omnidm-e2e-{}-sim-state", std::process::id()))
}

/// Provisions `n` simulated devices; returns their ids.
pub fn provision(data: &DataDir, server: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--server", server, "--devices"];
    let n_text = n.to_string();
    args.push(&n_text);
    args.extend_from_slice(extra);
    args.push("--print-provisioning");
    let accounts = ok(sim(&args));
    let file = data.0.join("accounts.jsonl");
    std::fs::write(&file, &accounts).unwrap();
    ok(omnidm(data, &["devices", "import", file.to_str().unwrap()]));
    accounts
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["device_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A raw HTTP/1.1 POST, so that tests can send what no well-behaved client would; (status,
/// response head, body).
pub fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

pub mod wsi;
