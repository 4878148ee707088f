//! The whole stack as the README's main command starts it: `infra/run` with the test build, on
//! free ports, 2 api replicas and 2 workers, its data in a folder of the test's.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Process, free_port, get_text, root};

/// `infra/run` on free ports; stopped with SIGTERM (as Ctrl-C would) when dropped.
pub struct Stack {
    process: Process,
    data: PathBuf,
    pub log: PathBuf,
    pub lb: u16,
    pub admin: u16,
    pub replicas: [u16; 2],
}

/// A free port whose next port is free too: the stack numbers its replicas from a base port.
fn two_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", base + 1)).is_ok() {
            return base;
        }
    }
}

impl Stack {
    /// Starts the stack with `env` added and waits (bounded) until all its ports listen.
    pub fn start(data: &Path, env: &[(&str, String)]) -> Self {
        let bin = crate::binary("lb");
        let (base, lb, admin) = (two_free_ports(), free_port(), free_port());
        let log = data.join("stack.log");
        let mut command = Command::new("bash");
        command
            .arg(root().join("infra/run"))
            .current_dir(root())
            .env("STACK_BIN_DIR", bin.parent().unwrap())
            .env("STACK_DATA_DIR", data)
            .env("API_REPLICAS", "2")
            .env("WORKERS", "2")
            .env("API_BASE_PORT", base.to_string())
            .env("LB_LISTEN", format!("127.0.0.1:{lb}"))
            .env("LB_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut stack = Self {
            process: Process::spawn(command, log.clone()),
            data: data.to_owned(),
            log,
            lb,
            admin,
            replicas: [base, base + 1],
        };
        for port in stack.ports() {
            stack.wait_for_port(port);
        }
        stack
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.lb)
    }

    /// The development key the stack made on its first start (`STACK_DATA_DIR/api-key`).
    pub fn key(&self) -> String {
        let path = self.data.join("api-key");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// A client that sends the development key.
    pub fn client(&self) -> reqwest::Client {
        crate::keyed_client(&self.key())
    }

    /// Waits (bounded) until `lb` calls both replicas healthy.
    pub fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let metrics = get_text(([127, 0, 0, 1], self.admin).into(), "/metrics");
            let healthy = self.replicas.iter().all(|port| {
                metrics.lines().any(|l| {
                    l.starts_with("lb_upstream_healthy{")
                        && l.contains(&format!("upstream=\"127.0.0.1:{port}\""))
                        && l.ends_with(" 1")
                })
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replicas never became ready:\n{metrics}\n{}",
                self.process.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pid of the stack's process named `name` (`api-1`, `worker-2`, `lb`), if running: a
    /// child of the supervisor whose environment names it.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let supervisor = std::fs::read_to_string(self.data.join("supervisord.pid")).ok()?;
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", supervisor.trim()))
                .ok()?;
        let wanted = format!("APP__LOG__PREFIX={name} | ");
        children
            .split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                    environ
                        .split(|b| *b == 0)
                        .any(|entry| entry == wanted.as_bytes())
                })
            })
    }

    /// The supervisor's log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }

    fn ports(&self) -> [u16; 4] {
        [self.lb, self.admin, self.replicas[0], self.replicas[1]]
    }

    /// Waits (bounded) for `port`; fails at once, with the stack's log, if the stack exits.
    fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.process.exited().is_some();
            assert!(
                !exited,
                "the stack exited early:\n{}",
                self.process.output()
            );
            assert!(
                Instant::now() < deadline,
                "nothing listens on {port}:\n{}",
                self.process.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (bounded); `false` if it had to be killed.
    fn stop(&mut self) -> bool {
        if self.process.exited().is_some() {
            return true;
        }
        self.process.signal("TERM");
        if self.process.wait_bounded(Duration::from_secs(20)).is_some() {
            return true;
        }
        self.process.kill();
        false
    }

    /// Stops the stack and checks that none of its ports still listens.
    pub fn stop_cleanly(&mut self) {
        assert!(self.stop(), "the stack did not stop within 20 s");
        for port in self.ports() {
            assert!(
                TcpStream::connect(("127.0.0.1", port)).is_err(),
                "something still listens on {port}"
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
