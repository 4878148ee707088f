use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `api` binary, built beside `lb` by the workspace's test run.
fn api_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_lb")).with_file_name("api");
    assert!(
        path.exists(),
        "{} missing: run the workspace's tests",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped; its output goes to `log`.
pub struct Process {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            log,
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An api replica on a fixed port (so that it can be restarted in place).
pub struct Api {
    pub port: u16,
    pub process: Process,
    dir: PathBuf,
    name: String,
}

impl Api {
    pub fn start(dir: &Path, name: &str) -> Self {
        let port = free_port();
        let mut api = Self {
            port,
            process: Process {
                child: None,
                log: PathBuf::new(),
            },
            dir: dir.to_owned(),
            name: name.to_owned(),
        };
        api.restart();
        api
    }

    pub fn restart(&mut self) {
        let mut command = Command::new(api_binary());
        command
            .env_clear()
            .env("APP__SERVER__LISTEN", format!("127.0.0.1:{}", self.port))
            .env("APP__SERVER__INSTANCE", &self.name)
            .env(
                "APP__STORE__URI",
                format!("sqlite://{}", self.dir.join("orders.db").display()),
            )
            .current_dir(&self.dir);
        let log = self.dir.join(format!("{}.log", self.name));
        self.process = Process::spawn(command, log);
        wait_for_port(self.port);
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http_requests_total` of this replica for `route` (all methods and statuses).
    pub fn requests(&self, route: &str) -> u64 {
        let text = get_text(self.addr(), "/metrics");
        text.lines()
            .filter(|l| {
                l.starts_with("http_requests_total{") && l.contains(&format!("route=\"{route}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

pub struct Lb {
    pub port: u16,
    pub admin: u16,
    pub process: Process,
}

impl Lb {
    pub fn start(dir: &Path, upstreams: &[SocketAddr], extra: &[(&str, &str)]) -> Self {
        let (port, admin) = (free_port(), free_port());
        let list: Vec<String> = upstreams.iter().map(ToString::to_string).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lb"));
        command
            .env_clear()
            .env("APP__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("APP__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("APP__SERVER__INSTANCE", format!("lb-{port}"))
            .env("APP__SERVER__RUN_DIR", dir)
            .env("APP__UPSTREAMS__ADDRESSES", list.join(","))
            .env("APP__HEALTH__INTERVAL_MS", "200")
            .envs(extra.iter().copied())
            .current_dir(dir);
        let process = Process::spawn(command, dir.join(format!("lb-{port}.log")));
        wait_for_port(port);
        wait_for_port(admin);
        Self {
            port,
            admin,
            process,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn metrics(&self) -> String {
        get_text(SocketAddr::from(([127, 0, 0, 1], self.admin)), "/metrics")
    }

    /// The `lb_upstream_healthy` gauge of `upstream`, if shown.
    pub fn healthy(&self, upstream: SocketAddr) -> Option<bool> {
        let needle = format!("upstream=\"{upstream}\"");
        self.metrics()
            .lines()
            .find(|l| l.starts_with("lb_upstream_healthy{") && l.contains(&needle))
            .map(|l| l.ends_with(" 1"))
    }

    /// Waits (bounded) until the balancer shows each upstream with the given health.
    pub fn wait_for_health(&self, expected: &[(SocketAddr, bool)]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !expected
            .iter()
            .all(|(addr, healthy)| self.healthy(*addr) == Some(*healthy))
        {
            assert!(
                Instant::now() < deadline,
                "health never became {expected:?}:\n{}\n{}",
                self.metrics(),
                self.process.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A GET over a fresh connection; the body as text.
pub fn get_text(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// A trivial upstream: answers every request 200 with a small JSON body and keeps the request
/// heads it received.
pub struct Echo {
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl Echo {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve_echo(stream, &seen));
            }
        });
        Self { addr, heads }
    }
}

fn serve_echo(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = stream.read(&mut chunk) else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buffer.len() < end + 4 + length {
                break;
            }
            buffer.drain(..end + 4 + length);
            seen.lock().unwrap().push(head);
            let body = "{\"ok\":true}";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}
