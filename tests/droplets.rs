//! The DigitalOcean deployment, simulated on one machine (tests/harness/droplets.rs): an lb
//! droplet, three app droplets (api + worker) and a data droplet (the MongoDB-compatible test
//! server, redis-server, and Garage in the place of Spaces), each in its own network namespace
//! behind the host firewall cloud-init installs, deployed by `infra/deploy` itself; a client
//! namespace plays the internet.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::droplets::{Host, Network};
use harness::{Fetch, available, pictures, root};

const LB: &str = "http://10.86.0.2";
const REDIS_PASSWORD: &str = "sim-redis-secret";

/// supervisord's configuration for a droplet: it plays systemd, with the units' names.
fn supervisor(programs: &[(&str, String)]) -> String {
    let mut text = format!(
        "[supervisord]\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\nchildlogdir={dir}\n\
         [unix_http_server]\nfile={dir}/supervisor.sock\n\
         [supervisorctl]\nserverurl=unix://{dir}/supervisor.sock\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory=supervisor.rpcinterface:make_main_rpcinterface\n",
        dir = "/var/lib/shop"
    );
    for (name, command) in programs {
        let autostart = !name.starts_with("shop-");
        text.push_str(&format!(
            "[program:{name}]\ncommand={command}\nautostart={autostart}\nautorestart=unexpected\n\
             stopsignal=TERM\nstopwaitsecs=20\nstopasgroup=true\nredirect_stderr=true\n\
             stdout_logfile=/var/log/shop/{name}.log\n"
        ));
    }
    text
}

/// A unit's command as systemd runs it: the environment files, then the binary.
fn with_env(binary: &str) -> String {
    format!(
        "sh -c 'set -a; . /etc/shop/shop.env; . /etc/shop/secrets.env; exec /opt/shop/current/bin/{binary}'"
    )
}

fn write(path: impl AsRef<Path>, text: &str) {
    std::fs::write(path.as_ref(), text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()));
}

/// Counts of a bounded load: answers by class, and transport failures with a sample.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    sample: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut sample = self.sample.lock().unwrap();
        if sample.len() < 10 {
            sample.push(what);
        }
    }

    fn report(&self) -> String {
        format!(
            "{} answered 2xx, {} failed: {:?}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.sample.lock().unwrap()
        )
    }
}

/// From the client namespace: `clients` loops of GET by id (and, with `writes`, POSTs with an
/// Idempotency-Key) until `stop`, at most `limit`; every answer other than 2xx is a failure.
fn load(
    network: &Network,
    key: &str,
    ids: Vec<String>,
    writes: bool,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> (std::thread::JoinHandle<()>, Arc<Tally>) {
    let tally = Arc::new(Tally::default());
    let (key, counts) = (key.to_owned(), tally.clone());
    let handle = network.from("client", move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            // Long enough for lb's own timeouts (a replica cut mid-request is retried after
            // timeouts.upstream_read_ms): the client sees what lb makes of it.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(45))
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {key}").parse().unwrap(),
                )]))
                .build()
                .unwrap();
            let deadline = Instant::now() + limit;
            let mut tasks = Vec::new();
            for worker in 0..6 {
                let (client, ids, stop, tally) =
                    (client.clone(), ids.clone(), stop.clone(), counts.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = worker;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        n += 1;
                        let request = if writes && n % 3 == 0 {
                            client
                                .post(format!("{LB}/orders"))
                                .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
                                .json(&serde_json::json!({"product": "sim", "quantity": 1,
                                    "customer_name": "Load", "customer_address": "1 Net St"}))
                        } else {
                            client.get(format!("{LB}/orders/{}", ids[n % ids.len()]))
                        };
                        match request.send().await {
                            Ok(answer) if answer.status().is_success() => {
                                tally.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(answer) => {
                                let status = answer.status();
                                tally.fail(format!(
                                    "{status}: {}",
                                    answer.text().await.unwrap_or_default()
                                ));
                            }
                            Err(e) => tally.fail(format!("{e:?}")),
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    (handle, tally)
}

/// Runs async `work` with a client in the client namespace and returns its result.
fn as_client<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
    network: &Network,
    work: impl FnOnce() -> F + Send + 'static,
) -> T {
    network
        .from("client", move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(work())
        })
        .join()
        .unwrap()
}

fn deploy(network: &Network, dir: &Path) {
    let supervisorctl = root().join("target/venv/run/bin/supervisorctl");
    let output = std::process::Command::new(root().join("infra/deploy"))
        .current_dir(root())
        .env("SHOP_SSH", network.ssh_script())
        .args([
            "--inventory",
            &dir.join("inventory.json").display().to_string(),
        ])
        .args(["--secrets", &dir.join("secrets.env").display().to_string()])
        .args([
            "--binaries",
            &harness::binary("api")
                .parent()
                .unwrap()
                .display()
                .to_string(),
        ])
        // Prometheus and node_exporter are not on this machine; the monitoring files are checked
        // by tests/deployment_files.rs.
        .arg("--no-monitoring")
        .args([
            "--service-ctl",
            &format!("{} -c /etc/shop/supervisord.conf", supervisorctl.display()),
        ])
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "infra/deploy failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The pid of the droplet's api, from its supervisor.
fn api_pid(host: &Host) -> String {
    let output = host.shell(&format!(
        "{} -c /etc/shop/supervisord.conf pid shop-api",
        root().join("target/venv/run/bin/supervisorctl").display()
    ));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn droplets_deployed_by_infra_deploy_serve_survive_faults_and_roll_without_failures() {
    let secantusd = harness::tool("secantusd-rs");
    let supervisord = root().join("target/venv/run/bin/supervisord");
    if !available(
        harness::droplets::possible(),
        "root with ip, nft, nsenter and unshare",
    ) || !available(
        secantusd.is_file(),
        "the MongoDB test server (infra/setup test)",
    ) || !available(
        harness::tool("garage").is_file(),
        "Garage (infra/setup test)",
    ) || !available(supervisord.is_file(), "supervisord (target/venv/run)")
        || !available(harness::on_path("redis-server").is_some(), "redis-server")
        || !available(
            root().join("target/release/lb").is_file(),
            "release binaries (infra/docker/prebuilt)",
        )
    {
        return;
    }
    let began = Instant::now();
    let phase = |what: &str| eprintln!("[{:>5.1} s] {what}", began.elapsed().as_secs_f64());
    let mut network = Network::new(&[
        ("lb", 2),
        ("app1", 11),
        ("app2", 12),
        ("app3", 13),
        ("data", 20),
        ("spaces", 30),
        ("client", 100),
    ]);
    let dir = network.dir.clone();
    let supervisord = supervisord.display().to_string();

    // The data droplet: its stores, as cloud-init would install them.
    let data = network.host("data");
    write(
        data.path("/etc/shop/supervisord.conf"),
        &supervisor(&[
            (
                "mongod",
                format!(
                    "{} --host 10.86.0.20 --port 27017 --storage-path /var/lib/shop/mongo --log-file-max 8MB",
                    secantusd.display()
                ),
            ),
            (
                "redis-server",
                "sh -c 'touch /etc/shop/redis.conf && exec redis-server /etc/shop/redis.conf --port 6379 --dir /var/lib/shop'"
                    .to_owned(),
            ),
        ]),
    );
    for name in ["lb", "app1", "app2", "app3"] {
        let host = network.host(name);
        let programs = if name == "lb" {
            vec![(
                "shop-lb",
                "/opt/shop/current/bin/lb --config /etc/shop/lb.toml".to_owned(),
            )]
        } else {
            vec![
                ("shop-api", with_env("api")),
                ("shop-worker", with_env("worker")),
            ]
        };
        write(
            host.path("/etc/shop/supervisord.conf"),
            &supervisor(&programs),
        );
    }
    for name in ["lb", "app1", "app2", "app3", "data"] {
        network.boot(
            name,
            &format!("{supervisord} -n -c /etc/shop/supervisord.conf"),
        );
    }
    // Spaces' place: Garage, outside the VPC's firewalls as Spaces is.
    let spaces = network.dir.join("spaces/s3");
    let started = network
        .host("spaces")
        .command(&root().join("infra/s3-test-server"))
        .arg(&spaces)
        .env("S3_TEST_SERVER_HOST", "10.86.0.30")
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let s3: std::collections::HashMap<String, String> = std::fs::read_to_string(spaces.join("env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

    // What `terraform output -json` gives, and the operator's secrets file.
    let hosts: serde_json::Map<String, serde_json::Value> = ["lb", "app1", "app2", "app3", "data"]
        .iter()
        .map(|name| {
            let host = network.host(name);
            let role = name.trim_end_matches(char::is_numeric);
            (
                (*name).to_owned(),
                serde_json::json!({"role": role, "ssh_address": name, "private_ip": host.ip.to_string()}),
            )
        })
        .collect();
    let inventory = serde_json::json!({
        "hosts": {"value": hosts, "sensitive": false},
        "admin_cidrs": {"value": ["10.86.0.250/32"]},
        "blob_url": {"value": format!("s3://{}/sim?endpoint={}&region={}",
            s3["ORDERS_TEST_S3_BUCKET"], s3["ORDERS_TEST_S3_ENDPOINT"], s3["ORDERS_TEST_S3_REGION"])},
    });
    write(dir.join("inventory.json"), &inventory.to_string());
    write(
        dir.join("secrets.env"),
        &format!(
            "APP__STORE__URI=mongodb://10.86.0.20:27017/\nAPP__QUEUE__URL=redis://:{REDIS_PASSWORD}@10.86.0.20:6379/0\n\
             AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nSHOP_REDIS_PASSWORD={REDIS_PASSWORD}\n",
            s3["ORDERS_TEST_S3_KEY_ID"], s3["ORDERS_TEST_S3_SECRET"]
        ),
    );
    harness::droplets::run(
        "chmod",
        &["600", &dir.join("secrets.env").display().to_string()],
    );

    // The first deploy: apps started, then lb.
    phase("droplets booted");
    deploy(&network, &dir);
    phase("first deploy done");
    let app1 = network.host("app1");
    let created = app1.shell(
        "set -a; . /etc/shop/shop.env; . /etc/shop/secrets.env; /opt/shop/current/bin/api keys create --name sim --scope admin",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8_lossy(&created.stdout).trim().to_owned();

    // Orders and a thumbnail through lb's address; nothing but lb's port from outside.
    let picture = pictures::jpeg(1200, 800);
    let key_for_client = key.clone();
    let ids: Vec<String> = as_client(&network, move || async move {
        let client = harness::keyed_client(&key_for_client);
        let unkeyed = reqwest::Client::new();
        let refused = unkeyed.get(format!("{LB}/orders")).send().await.unwrap();
        assert_eq!(refused.status(), 401);
        let mut ids = Vec::new();
        for n in 0..20 {
            let created: serde_json::Value = client
                .post(format!("{LB}/orders"))
                .json(
                    &serde_json::json!({"product": format!("p{n}"), "quantity": n + 1,
                    "customer_name": "Sim", "customer_address": "10 VPC Road"}),
                )
                .fetch_json()
                .await;
            let id = created["order"]["_id"].as_str();
            ids.push(id.unwrap_or_else(|| panic!("{created}")).to_owned());
        }
        let order: serde_json::Value = client
            .get(format!("{LB}/orders/{}", ids[3]))
            .fetch_json()
            .await;
        assert_eq!(order["order"]["quantity"], 4);
        let updated = client
            .put(format!("{LB}/orders/{}", ids[3]))
            .json(&serde_json::json!({"quantity": 9}))
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
        let gone = client
            .delete(format!("{LB}/orders/{}", ids[19]))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 200);
        ids.pop();

        let upload: serde_json::Value = client
            .post(format!("{LB}/images"))
            .multipart(pictures::form(&picture, "p.jpg"))
            .fetch_json()
            .await;
        let status_url = upload["status_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{upload}"))
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status: serde_json::Value =
                client.get(format!("{LB}{status_url}")).fetch_json().await;
            if status["status"] == "done" {
                break;
            }
            assert!(
                status["status"] != "failed" && Instant::now() < deadline,
                "{status}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let thumbnail = client
            .get(format!("{LB}{status_url}/thumbnail"))
            .send()
            .await
            .unwrap();
        assert_eq!(thumbnail.status(), 200);
        let bytes = thumbnail.bytes().await.unwrap();
        let made = image::load_from_memory(&bytes).unwrap();
        assert!(made.width() <= 300 && made.height() <= 300);

        for (address, what) in [
            ("10.86.0.11:8080", "an api"),
            ("10.86.0.12:9464", "an api's metrics"),
            ("10.86.0.20:27017", "MongoDB"),
            ("10.86.0.20:6379", "Redis"),
            ("10.86.0.2:9000", "lb's admin API"),
        ] {
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect(address),
            )
            .await;
            assert!(
                !matches!(attempt, Ok(Ok(_))),
                "the internet reached {what} at {address}"
            );
        }
        ids
    });

    phase("orders, thumbnail and firewall checked");
    // app2's link cut under load: lb retries elsewhere, no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (running, tally) = load(
        &network,
        &key,
        ids.clone(),
        false,
        stop.clone(),
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    network.link("app2", false);
    std::thread::sleep(Duration::from_secs(5));
    network.link("app2", true);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap();
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "app2 cut: {}",
        tally.report()
    );
    assert!(
        tally.ok.load(Ordering::Relaxed) > 50,
        "app2 cut: {}",
        tally.report()
    );

    phase(&format!("app2 cut and back: {}", tally.report()));
    // The data droplet cut for 10 s: 503 JSON while it is away, then service by itself.
    network.link("data", false);
    let (key_during, id) = (key.clone(), ids[0].clone());
    let during = as_client(&network, move || async move {
        let client = harness::keyed_client(&key_during);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut statuses = Vec::new();
        while Instant::now() < deadline {
            let answer = client
                .get(format!("{LB}/orders/{id}"))
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body: serde_json::Value = answer.json().await.unwrap();
            if status != 200 {
                assert_eq!(status, 503, "{body}");
                assert!(body["message"].is_string(), "{body}");
            }
            statuses.push(status);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        statuses
    });
    network.link("data", true);
    assert!(
        during.contains(&503),
        "no 503 while the data droplet was away: {during:?}"
    );
    let (key_after, id) = (key.clone(), ids[0].clone());
    as_client(&network, move || async move {
        let client = harness::keyed_client(&key_after);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(answer) = client.get(format!("{LB}/orders/{id}")).send().await
                && answer.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("no recovery 60 s after the data droplet came back");
    });

    phase(&format!(
        "data cut and recovered: answers while away {during:?}"
    ));
    // A rolling deploy across the three app droplets under load: no request fails.
    let before: Vec<String> = ["app1", "app2", "app3"]
        .iter()
        .map(|n| api_pid(network.host(n)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (running, tally) = load(
        &network,
        &key,
        ids,
        true,
        stop.clone(),
        Duration::from_secs(240),
    );
    std::thread::sleep(Duration::from_secs(1));
    deploy(&network, &dir);
    phase("rolling deploy done");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    running.join().unwrap();
    let after: Vec<String> = ["app1", "app2", "app3"]
        .iter()
        .map(|n| api_pid(network.host(n)))
        .collect();
    assert_eq!(
        tally.failed.load(Ordering::Relaxed),
        0,
        "rolling deploy: {}",
        tally.report()
    );
    phase(&format!("rolling deploy: {}", tally.report()));
    for (old, new) in before.iter().zip(&after) {
        assert!(
            !new.is_empty() && old != new,
            "every api restarted: {before:?} → {after:?}"
        );
    }
}
