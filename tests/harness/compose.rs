//! The compose stack (`infra/compose.yaml`) under a project name of its own, on the images
//! `infra/setup test` prepares and the binaries `infra/docker/prebuilt` stripped into
//! `target/docker/bin`; lb published on a free port of 127.0.0.1. Dropping it removes every
//! container, network and volume of the project, and the image it tagged for itself.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{available, free_port, root};

pub struct Compose {
    program: PathBuf,
    pub project: String,
    pub image: String,
    pub port: u16,
    /// Prometheus's published port (profile `monitoring`).
    pub prometheus_port: u16,
    /// Extra variables for every compose command (replica counts).
    pub vars: Vec<(String, String)>,
}

/// The Compose binary `infra/setup test` installs, when an engine answers and the prebuilt
/// binaries exist; `None` (skip) otherwise, except under CI.
fn tools() -> Option<PathBuf> {
    let program = root().join("target/venv/docker/bin/docker-compose");
    let engine = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let binaries = root().join("target/docker/bin/api").is_file();
    (available(program.is_file(), "Compose (target/venv/docker)")
        && available(engine, "a running Docker engine")
        && available(binaries, "target/docker/bin (infra/docker/prebuilt)"))
    .then_some(program)
}

impl Compose {
    pub fn new() -> Option<Self> {
        let program = tools()?;
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Some(Self {
            program,
            project: format!("shop-test-{id}"),
            image: format!("shop-test-{id}:latest"),
            port: free_port(),
            prometheus_port: free_port(),
            vars: Vec::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `docker compose … ARGS` for this project; its output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        let root = root();
        Command::new(&self.program)
            .current_dir(root)
            .env("SHOP_IMAGE", &self.image)
            .env("LB_ADDRESS", "127.0.0.1")
            .env("LB_PORT", self.port.to_string())
            .env("PROMETHEUS_ADDRESS", "127.0.0.1")
            .env("PROMETHEUS_PORT", self.prometheus_port.to_string())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args(["--project-name", &self.project])
            .args(["--env-file", "infra/docker/offline.env"])
            .args(["--file", "infra/compose.yaml"])
            .args(args)
            .output()
            .expect("compose runs")
    }

    /// `run`, failing the test with compose's output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "compose {args:?} failed:\n{text}");
        text
    }

    /// The project's containers (`compose ps --all`): service, name, state and health.
    pub fn containers(&self) -> Vec<Container> {
        let text = self.ok(&["ps", "--all", "--format", "json"]);
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let c: Value = serde_json::from_str(l).unwrap();
                Container {
                    service: c["Service"].as_str().unwrap_or_default().to_owned(),
                    name: c["Name"].as_str().unwrap_or_default().to_owned(),
                    state: c["State"].as_str().unwrap_or_default().to_owned(),
                    health: c["Health"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// Waits (bounded) until every container is running and healthy (those with a health
    /// check); returns how long that took.
    pub fn wait_healthy(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let containers = self.containers();
            let ready = !containers.is_empty()
                && containers.iter().all(|c| {
                    c.state == "running" && (c.health.is_empty() || c.health == "healthy")
                });
            if ready {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "not all healthy after {limit:?}: {containers:#?}\n{}",
                self.ok(&["logs", "--tail", "30"])
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGKILLs one running container of `service` (`docker kill`); its name.
    pub fn kill_one(&self, service: &str) -> String {
        let victim = self
            .containers()
            .into_iter()
            .find(|c| c.service == service && c.state == "running")
            .unwrap_or_else(|| panic!("no running {service} container"));
        let killed = Command::new("docker")
            .args(["kill", &victim.name])
            .output()
            .unwrap();
        assert!(killed.status.success(), "{killed:?}");
        victim.name
    }

    pub fn count(&self, service: &str) -> usize {
        self.containers()
            .iter()
            .filter(|c| c.service == service && c.state == "running")
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub service: String,
    pub name: String,
    pub state: String,
    pub health: String,
}

impl Drop for Compose {
    fn drop(&mut self) {
        let down = self.run(&[
            "--profile",
            "tools",
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "5",
        ]);
        if !down.status.success() {
            eprintln!(
                "compose down failed: {}",
                String::from_utf8_lossy(&down.stderr)
            );
        }
        // Whatever down left (a profile's volume compose no longer tracks), by the project's label.
        let label = format!("label=com.docker.compose.project={}", self.project);
        for kind in ["container", "volume", "network"] {
            let listed = Command::new("docker")
                .args([kind, "ls", "--quiet", "--filter", &label])
                .args((kind == "container").then_some("--all"))
                .output();
            let Ok(listed) = listed else { continue };
            let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args([kind, "rm", "--force"])
                    .args(&ids)
                    .output();
            }
        }
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.image])
            .output();
    }
}
