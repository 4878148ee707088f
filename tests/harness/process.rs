//! Real processes: the workspace's binaries started with a log file, waited for (bounded),
//! signalled, and killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace (`api`, `worker`, `lb`, `seed`), from the target folder of the
/// running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the workspace's tests (cargo nextest run --workspace), which build it",
        path.display()
    );
    path
}

/// Runs binary `name` with only `env` set, expecting it to refuse to start: exit code 2 and one
/// line on stderr, which is returned.
pub fn refused_start(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary(name))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    stderr
}

/// A child process whose stdout and stderr go to `log`; killed when dropped.
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        // Appending: a process that opens its own stdout again (supervisord) writes at the end
        // rather than over what is there.
        std::fs::write(&log, b"").unwrap();
        let file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        Self { child, log }
    }

    /// Waits (bounded) until `find` sees what it looks for in the log; fails with the log if
    /// the process exits first.
    pub fn wait_for<T>(&mut self, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.output();
            if let Some(found) = find(&text) {
                return found;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{text}", self.log.display());
            }
            assert!(
                Instant::now() < deadline,
                "{} is not ready after 20 s:\n{text}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its warning lines, less the one `Api::start` causes by turning keys off.
    pub fn warnings(&self) -> Vec<String> {
        self.output()
            .lines()
            .filter(|l| l.contains("WARN") && !l.contains("auth.required is off"))
            .map(str::to_owned)
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `name` (`TERM`, `KILL`, …) with procps' `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub fn wait_bounded(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        self.wait_bounded(limit)
            .unwrap_or_else(|| panic!("{} did not exit in {limit:?}", self.log.display()))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A binary of the api's family in `dir` with a clean environment: `APP__SERVER__INSTANCE`
/// set to `name`, then `env`; its log in `dir/{name}.log`.
fn start(
    binary_name: &str,
    dir: &Path,
    name: &str,
    args: &[String],
    env: &[(String, String)],
) -> Process {
    let mut command = Command::new(binary(binary_name));
    command
        .env_clear()
        .env("APP__SERVER__INSTANCE", name)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .current_dir(dir);
    Process::spawn(command, dir.join(format!("{name}.log")))
}

fn owned(env: &[(&str, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Runs `api keys create` in `dir` with only `env` set (the store's settings) and returns the
/// key it printed.
pub fn create_key(dir: &Path, env: &[(&str, String)], scopes: &str) -> String {
    let output = Command::new(binary("api"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["keys", "create", "--name", "test", "--scope", scopes])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap();
    key.lines().last().unwrap().trim().to_owned()
}

/// A real `api` process.
pub struct Api {
    pub process: Process,
    pub addr: SocketAddr,
    dir: PathBuf,
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Api {
    /// Starts it on port 0 (unless `env` names a listener) and waits (bounded) for its
    /// "listening" line.
    pub fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> Self {
        Self::start_with_args(dir, name, &[], env)
    }

    /// Keys are off unless `env` sets `APP__AUTH__REQUIRED`: these processes serve tests of
    /// other behaviour (the api's own tests check keys, in-process on both stores, and the
    /// stack and Locust tests run with the stack's key).
    pub fn start_with_args(dir: &Path, name: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut all = vec![
            ("APP__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("APP__AUTH__REQUIRED".to_owned(), "false".to_owned()),
        ];
        all.extend(owned(env));
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut process = start("api", dir, name, &args, &all);
        let addr = process.wait_for(listening_addr);
        Self {
            process,
            addr,
            dir: dir.to_owned(),
            name: name.to_owned(),
            args,
            env: all,
        }
    }

    /// Kills it and starts it again with the same settings (the same port when `env` named one).
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = start("api", &self.dir, &self.name, &self.args, &self.env);
        self.addr = self.process.wait_for(listening_addr);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The address in the "listening" log line, text (`http://…`) or JSON.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains("listening on http://"))?;
    let start = line.find("http://")? + "http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// A real `worker` process.
pub struct Worker {
    pub process: Process,
}

impl Worker {
    /// Starts it and waits (bounded) for its "worker started" line.
    pub fn start(dir: &Path, name: &str, env: &[(&str, String)]) -> Self {
        let mut process = start("worker", dir, name, &[], &owned(env));
        process.wait_for(|log| log.contains("worker started").then_some(()));
        Self { process }
    }
}
