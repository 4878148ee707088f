//! A simulated set of droplets on one machine: a network namespace per droplet, joined by veth
//! pairs to a bridge (the VPC), each droplet's `/opt/shop`, `/etc/shop`, `/var/lib/shop` and
//! `/var/log/shop` its own (a private mount namespace), and supervisord in the place of systemd.
//! `infra/deploy` reaches a droplet through `nsenter` in the place of SSH (the script it is given
//! as `SHOP_SSH`). Needs root, iproute2, nftables and util-linux. Every namespace, link and
//! process is removed when the [`Network`] is dropped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Process;

/// The folders each droplet has of its own, bind-mounted over the machine's.
const PRIVATE: [&str; 4] = ["/opt/shop", "/etc/shop", "/var/lib/shop", "/var/log/shop"];

/// Runs `program args`, failing the test with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether this machine can make the simulation: root, and the tools it uses.
pub fn possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && ["ip", "nft", "nsenter", "unshare"]
        .iter()
        .all(|tool| crate::on_path(tool).is_some())
}

pub struct Network {
    prefix: String,
    pub dir: PathBuf,
    hosts: Vec<Host>,
    /// Mount points this network created on the machine, removed at the end.
    made: Vec<PathBuf>,
    switch: String,
}

pub struct Host {
    pub name: String,
    pub ip: Ipv4Addr,
    namespace: String,
    port: String,
    root: PathBuf,
    anchor: Option<Process>,
}

impl Host {
    /// This droplet's view of a private folder (`/etc/shop` → its own copy).
    pub fn path(&self, private: &str) -> PathBuf {
        self.root.join(private.trim_start_matches('/'))
    }

    /// Runs a shell command line on the droplet (its network and folders), as `ssh` would.
    pub fn shell(&self, line: &str) -> std::process::Output {
        let pid = self
            .anchor
            .as_ref()
            .expect("a started droplet")
            .pid()
            .to_string();
        Command::new("nsenter")
            .args(["--target", &pid, "--net", "--mount", "--", "sh", "-c", line])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `program args` in the droplet's network namespace only.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .arg(program);
        command
    }
}

impl Network {
    /// Makes the bridge and one namespace per `(name, last address byte)`, on 10.86.0.0/24.
    pub fn new(hosts: &[(&str, u8)]) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..5];
        let prefix = format!("sim{tag}");
        let dir = tempfile::Builder::new()
            .prefix("droplets")
            .tempdir()
            .unwrap()
            .keep();
        let switch = format!("{prefix}-sw");
        let mut network = Self {
            prefix,
            dir,
            hosts: Vec::new(),
            made: Vec::new(),
            switch,
        };
        run("ip", &["netns", "add", &network.switch]);
        run(
            "ip",
            &[
                "-n",
                &network.switch,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
            ],
        );
        run("ip", &["-n", &network.switch, "link", "set", "br0", "up"]);
        for (index, (name, last)) in hosts.iter().enumerate() {
            let namespace = format!("{}-{name}", network.prefix);
            let (inside, port) = (
                format!("{}{index}a", network.prefix),
                format!("{}{index}b", network.prefix),
            );
            let ip = Ipv4Addr::new(10, 86, 0, *last);
            run("ip", &["netns", "add", &namespace]);
            run(
                "ip",
                &[
                    "link", "add", &inside, "type", "veth", "peer", "name", &port,
                ],
            );
            run("ip", &["link", "set", &inside, "netns", &namespace]);
            run("ip", &["link", "set", &port, "netns", &network.switch]);
            run(
                "ip",
                &["-n", &namespace, "link", "set", &inside, "name", "eth0"],
            );
            run(
                "ip",
                &[
                    "-n",
                    &namespace,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ],
            );
            run("ip", &["-n", &namespace, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &namespace, "link", "set", "lo", "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &network.switch,
                    "link",
                    "set",
                    &port,
                    "master",
                    "br0",
                    "up",
                ],
            );
            let root = network.dir.join(name);
            for private in PRIVATE {
                std::fs::create_dir_all(root.join(private.trim_start_matches('/'))).unwrap();
            }
            network.hosts.push(Host {
                name: (*name).to_owned(),
                ip,
                namespace,
                port,
                root,
                anchor: None,
            });
        }
        for private in PRIVATE {
            let path = PathBuf::from(private);
            if !path.exists() {
                std::fs::create_dir_all(&path).unwrap();
                network.made.push(path);
            }
        }
        network
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Starts the droplet's "init": `command` (supervisord, say) in its own network and mount
    /// namespaces, with its private folders mounted; it is the process `shell` enters.
    pub fn boot(&mut self, name: &str, command: &str) {
        let host = self.hosts.iter_mut().find(|h| h.name == name).unwrap();
        let mounts: Vec<String> = PRIVATE
            .iter()
            .map(|p| {
                format!(
                    "mount --bind {} {p}",
                    host.root.join(p.trim_start_matches('/')).display()
                )
            })
            .collect();
        let mut init = Command::new("ip");
        init.args(["netns", "exec", &host.namespace])
            .args(["unshare", "--mount", "--propagation", "private", "--"])
            .args([
                "sh",
                "-c",
                &format!("{} && exec {command}", mounts.join(" && ")),
            ]);
        let log = self.dir.join(format!("{name}.init.log"));
        host.anchor = Some(Process::spawn(init, log));
    }

    /// Cuts (`false`) or restores (`true`) a droplet's link to the bridge.
    pub fn link(&self, name: &str, up: bool) {
        let host = self.host(name);
        let state = if up { "up" } else { "down" };
        run(
            "ip",
            &["-n", &self.switch, "link", "set", &host.port, state],
        );
    }

    /// Runs `work` on a thread inside `name`'s network namespace, with its own tokio runtime:
    /// sockets it opens are that droplet's.
    pub fn from<T: Send + 'static>(
        &self,
        name: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.host(name).namespace);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: a valid namespace descriptor; setns affects only this thread.
            let done =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(done, 0, "setns {path}: {}", std::io::Error::last_os_error());
            work()
        })
    }

    /// The script `infra/deploy` is given as `SHOP_SSH`: `SCRIPT HOST LINE` runs LINE on HOST.
    pub fn ssh_script(&self) -> PathBuf {
        let mut cases = String::new();
        for host in &self.hosts {
            if let Some(anchor) = &host.anchor {
                cases.push_str(&format!("    {}) pid={} ;;\n", host.name, anchor.pid()));
            }
        }
        let script = self.dir.join("ssh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# SSH's place in the simulation: HOST LINE\ncase \"$1\" in\n{cases}    *) echo \"no host $1\" >&2; exit 255 ;;\nesac\nexec nsenter --target \"$pid\" --net --mount -- sh -c \"$2\"\n"
            ),
        )
        .unwrap();
        run("chmod", &["755", &script.display().to_string()]);
        script
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &mut self.hosts {
            if let Some(mut anchor) = host.anchor.take() {
                anchor.signal("TERM");
                if anchor.wait_bounded(Duration::from_secs(30)).is_none() {
                    anchor.kill();
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for host in &self.hosts {
            // Whatever is left in the namespace (a process an init did not stop) is killed.
            loop {
                let pids = Command::new("ip")
                    .args(["netns", "pids", &host.namespace])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if pids.trim().is_empty() || Instant::now() > deadline {
                    break;
                }
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = Command::new("ip")
                .args(["netns", "del", &host.namespace])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
        for path in &self.made {
            let _ = std::fs::remove_dir(path);
        }
        if std::thread::panicking() {
            eprintln!(
                "the droplets' files and logs are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
