//! What the lb tests run: a real `lb` process, api replicas on fixed ports (so that they can be
//! restarted in place), and a trivial upstream that keeps the requests that reached it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Api, Process, free_port, get_text, wait_for_port};

/// An api replica on a port of its own, on the SQLite file shared by the test's replicas.
fn replica(dir: &Path, name: &str) -> Api {
    Api::start(
        dir,
        name,
        &[
            ("APP__SERVER__LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "APP__STORE__URI",
                format!("sqlite://{}", dir.join("orders.db").display()),
            ),
        ],
    )
}

/// `count` replicas on the test's SQLite file and an `lb` in front of them with `extra`
/// settings, once the balancer calls every replica healthy.
pub fn balanced(dir: &Path, count: usize, extra: &[(&str, &str)]) -> (Vec<Api>, Lb) {
    let apis: Vec<Api> = (1..=count)
        .map(|i| replica(dir, &format!("api-{i}")))
        .collect();
    let addrs: Vec<SocketAddr> = apis.iter().map(|api| api.addr).collect();
    let lb = Lb::start(dir, &addrs, extra);
    lb.wait_for_health(&addrs.iter().map(|a| (*a, true)).collect::<Vec<_>>());
    (apis, lb)
}

/// A trivial upstream and an `lb` in front of it with `extra` settings, once it is healthy.
pub fn echoed(dir: &Path, extra: &[(&str, &str)]) -> (Echo, Lb) {
    let echo = Echo::start();
    let lb = Lb::start(dir, &[echo.addr], extra);
    lb.wait_for_health(&[(echo.addr, true)]);
    (echo, lb)
}

/// `http_requests_total` of `api` for `route` (all methods and statuses).
pub fn requests(api: &Api, route: &str) -> u64 {
    let text = get_text(api.addr, "/metrics");
    text.lines()
        .filter(|l| {
            l.starts_with("http_requests_total{") && l.contains(&format!("route=\"{route}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub struct Lb {
    pub port: u16,
    pub admin: u16,
    pub process: Process,
    /// How it was started: a graceful upgrade starts its successor the same way.
    command: Vec<(String, String)>,
    dir: std::path::PathBuf,
}

impl Lb {
    pub fn start(dir: &Path, upstreams: &[SocketAddr], extra: &[(&str, &str)]) -> Self {
        let (port, admin) = (free_port(), free_port());
        let list: Vec<String> = upstreams.iter().map(ToString::to_string).collect();
        let mut env: Vec<(String, String)> = [
            ("APP__SERVER__LISTEN", format!("127.0.0.1:{port}")),
            ("APP__SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}")),
            ("APP__SERVER__INSTANCE", format!("lb-{port}")),
            ("APP__SERVER__RUN_DIR", dir.display().to_string()),
            ("APP__UPSTREAMS__ADDRESSES", list.join(",")),
            ("APP__HEALTH__INTERVAL_MS", "200".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let process = Self::spawn(dir, &env, &[], &format!("lb-{port}.log"));
        wait_for_port(port);
        wait_for_port(admin);
        Self {
            port,
            admin,
            process,
            command: env,
            dir: dir.to_owned(),
        }
    }

    fn spawn(dir: &Path, env: &[(String, String)], args: &[&str], log: &str) -> Process {
        let mut command = Command::new(harness::binary("lb"));
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .current_dir(dir);
        Process::spawn(command, dir.join(log))
    }

    /// A new lb with the same settings and `--upgrade`: it waits for this one's listening
    /// sockets, which this one hands over on SIGQUIT.
    pub fn successor(&self) -> Process {
        Self::spawn(
            &self.dir,
            &self.command,
            &["--upgrade"],
            &format!("lb-{}-upgraded.log", self.port),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn metrics(&self) -> String {
        get_text(SocketAddr::from(([127, 0, 0, 1], self.admin)), "/metrics")
    }

    /// The sum of a counter over all its labels.
    pub fn counter(&self, name: &str) -> u64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
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

/// A trivial upstream: answers every request 200 with a small JSON body and keeps the request
/// heads it received; a request with `x-echo-delay-ms: N` is answered after N ms.
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
            let delay = head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("x-echo-delay-ms")
                    .then(|| value.trim().parse::<u64>().ok())?
            });
            seen.lock().unwrap().push(head);
            if let Some(ms) = delay {
                std::thread::sleep(Duration::from_millis(ms));
            }
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
