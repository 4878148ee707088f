//! A real Redis server (Debian's `redis-server`) on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port};

/// A Redis server on a free loopback port, its data (append-only file) in `dir`. Stopping and
/// starting it again keeps the port and the data, as a restarted server would.
pub struct RedisServer {
    binary: PathBuf,
    dir: PathBuf,
    pub port: u16,
    process: Option<Process>,
    /// Keeps nothing on disk (what the queue warns about).
    in_memory: bool,
    /// Speaks TLS only, with these certificates.
    tls: Option<crate::tls::ServerFiles>,
}

impl RedisServer {
    /// Starts one, or `None` (the test skips) outside CI when `redis-server` is not installed.
    pub fn start(dir: &Path) -> Option<Self> {
        Self::launch(dir, false)
    }

    /// A server without persistence (`appendonly no`, no snapshots).
    pub fn start_in_memory(dir: &Path) -> Option<Self> {
        Self::launch(dir, true)
    }

    /// A server that speaks TLS only (`rediss://`), with a certificate `ca` signs.
    pub fn start_tls(dir: &Path, ca: &crate::tls::TestCa) -> Option<Self> {
        let files = ca.server_files(&dir.join("tls"));
        Self::launch_with(dir, false, Some(files))
    }

    fn launch(dir: &Path, in_memory: bool) -> Option<Self> {
        Self::launch_with(dir, in_memory, None)
    }

    fn launch_with(
        dir: &Path,
        in_memory: bool,
        tls: Option<crate::tls::ServerFiles>,
    ) -> Option<Self> {
        let binary = crate::on_path("redis-server");
        if !crate::available(binary.is_some(), "redis-server") {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let mut server = Self {
            binary: binary?,
            dir: dir.to_owned(),
            port: 0,
            process: None,
            in_memory,
            tls,
        };
        // A port free a moment ago may be taken by the time Redis binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!(
            "redis-server did not start; see {}",
            dir.join("redis.log").display()
        );
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server again after [`Self::stop`], on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.try_start(), "redis-server did not restart");
    }

    fn try_start(&mut self) -> bool {
        let mut command = Command::new(&self.binary);
        let port = self.port.to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(files) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&files.cert)
                .arg("--tls-key-file")
                .arg(&files.key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca),
        };
        command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(if self.in_memory {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            } else {
                ["--appendonly", "yes", "--appendfsync", "always"]
            })
            .arg("--dir")
            .arg(&self.dir);
        let mut process = Process::spawn(command, self.dir.join("redis.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && process.exited().is_none() {
            // A TLS server is taken as up once it accepts connections.
            let up = match self.tls {
                None => ping(self.port),
                Some(_) => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if up {
                self.process = Some(process);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the server (it writes its append-only file first) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal("TERM");
            process.wait_for_exit(Duration::from_secs(10));
        }
    }
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
