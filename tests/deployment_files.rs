//! The DigitalOcean deployment's files, checked by the tools that read them: systemd-analyze
//! (verify, and the security exposure of every service), cloud-init's schema, nft, promtool,
//! and Terraform (where it is installed; python-hcl2 parses the files everywhere).

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{available, on_path, root};

fn digitalocean() -> PathBuf {
    root().join("infra/digitalocean")
}

fn output(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

/// The inventory `terraform output -json` would give for a plan with every role.
fn inventory(dir: &Path) -> PathBuf {
    let path = dir.join("inventory.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "hosts": {"value": {
                "shop-lb": {"role": "lb", "ssh_address": "203.0.113.2", "private_ip": "10.110.0.2"},
                "shop-app-1": {"role": "app", "ssh_address": "203.0.113.3", "private_ip": "10.110.0.3"},
                "shop-app-2": {"role": "app", "ssh_address": "203.0.113.4", "private_ip": "10.110.0.4"},
                "shop-worker-1": {"role": "worker", "ssh_address": "203.0.113.5", "private_ip": "10.110.0.5"},
                "shop-data": {"role": "data", "ssh_address": "203.0.113.6", "private_ip": "10.110.0.6"}
            }},
            "admin_cidrs": {"value": ["198.51.100.7/32"]},
            "blob_url": {"value": "s3://shop/blobs?endpoint=https://ams3.digitaloceanspaces.com&region=ams3"},
        })
        .to_string(),
    )
    .unwrap();
    path
}

/// Every unit passes `systemd-analyze verify` against the paths it names, and every service's
/// exposure (`systemd-analyze security --offline`) is at most 2.0.
#[test]
fn the_systemd_units_verify_and_are_hardened() {
    if !available(on_path("systemd-analyze").is_some(), "systemd-analyze") {
        return;
    }
    let units = files(&digitalocean().join("systemd"), "");
    assert!(units.len() >= 5, "{units:?}");
    // A root with the droplet's paths and the machine's own units (verify follows dependencies).
    let root_dir = tempfile::tempdir().unwrap();
    let system = root_dir.path().join("etc/systemd/system");
    let bin = root_dir.path().join("opt/shop/current/bin");
    std::fs::create_dir_all(&system).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root_dir.path().join("usr/lib/systemd")).unwrap();
    let (copied, text) = output(
        Command::new("cp").args([
            "-a",
            "/lib/systemd/system",
            &root_dir
                .path()
                .join("usr/lib/systemd")
                .display()
                .to_string(),
        ]),
    );
    assert!(copied, "{text}");
    for name in ["api", "worker", "lb", "shop-backup"] {
        std::fs::copy("/bin/true", bin.join(name)).unwrap();
    }
    let mut names = Vec::new();
    for unit in &units {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(unit, system.join(&name)).unwrap();
        names.push(name);
    }
    let (verified, text) = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root_dir.path().display()))
            .args(&names),
    );
    assert!(verified && text.trim().is_empty(), "{text}");

    // A missing binary is what verify reports: the check can fail.
    std::fs::remove_file(bin.join("api")).unwrap();
    let (verified, text) = output(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root_dir.path().display()))
            .arg("shop-api.service"),
    );
    assert!(
        !verified && text.contains("/opt/shop/current/bin/api"),
        "{text}"
    );

    for unit in units
        .iter()
        .filter(|u| u.extension().is_some_and(|e| e == "service"))
    {
        let (_, text) = output(
            Command::new("systemd-analyze")
                .args(["security", "--offline=true", "--no-pager"])
                .arg(unit),
        );
        let exposure: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure for {}:\n{text}", unit.display()));
        assert!(
            exposure <= 2.0,
            "{}: exposure {exposure}\n{text}",
            unit.display()
        );
    }
}

/// The cloud-config each role boots with is valid for cloud-init, and its host firewall for nft.
#[test]
fn every_role_boots_with_a_valid_cloud_config_and_firewall() {
    if !available(
        on_path("cloud-init").is_some(),
        "cloud-init (infra/setup test)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path());
    for role in ["lb", "app", "worker", "data"] {
        let (rendered, config) = output(
            Command::new(root().join("infra/deploy"))
                .args(["--inventory", &inventory.display().to_string()])
                .args(["--cloud-init", role]),
        );
        assert!(rendered, "{config}");
        assert!(config.starts_with("#cloud-config\n"), "{config}");
        assert!(
            !config.contains("${"),
            "{role}: a placeholder is left:\n{config}"
        );
        let file = dir.path().join(format!("{role}.yaml"));
        std::fs::write(&file, &config).unwrap();
        let (valid, text) = output(Command::new("cloud-init").args(["schema", "-c"]).arg(&file));
        assert!(valid && text.contains("Valid"), "{role}: {text}");

        // The firewall cloud-init writes, parsed by nft in a network namespace of its own.
        let parsed = parse_yaml(&config).expect("YAML");
        let firewall = parsed["write_files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "/etc/shop/nftables.conf")
            .and_then(|f| f["content"].as_str())
            .unwrap()
            .to_owned();
        let rules = dir.path().join(format!("{role}.nft"));
        std::fs::write(&rules, &firewall).unwrap();
        if harness::droplets::possible() {
            let (checked, text) = output(
                Command::new("unshare")
                    .args(["--net", "nft", "-c", "-f"])
                    .arg(&rules),
            );
            assert!(checked, "{role}: {text}\n{firewall}");
        }
    }
}

/// YAML through Debian's Python and its yaml module (what cloud-init itself runs on), as JSON.
fn parse_yaml(text: &str) -> Option<serde_json::Value> {
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    std::io::Write::write_all(child.stdin.as_mut()?, text.as_bytes()).ok()?;
    drop(child.stdin.take());
    let output = child.wait_with_output().ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

/// Prometheus's configuration and every alert rule load in promtool.
#[test]
fn the_monitoring_configuration_and_rules_load() {
    let promtool = harness::tool("promtool");
    if !available(promtool.is_file(), "promtool (infra/setup test)") {
        return;
    }
    let monitoring = digitalocean().join("monitoring");
    // Laid out as infra/deploy lays it out on the lb droplet.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("targets")).unwrap();
    for name in ["prometheus.yml", "droplets.yml"] {
        std::fs::copy(monitoring.join(name), dir.path().join(name)).unwrap();
    }
    std::fs::copy(
        root().join("infra/monitoring/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    for job in ["lb", "api", "worker", "node"] {
        std::fs::write(
            dir.path().join(format!("targets/{job}.json")),
            r#"[{"targets": ["10.110.0.2:9100"]}]"#,
        )
        .unwrap();
    }
    let (valid, text) = output(
        Command::new(&promtool)
            .args(["check", "config", "--syntax-only"])
            .arg(dir.path().join("prometheus.yml")),
    );
    assert!(valid, "{text}");
    let (valid, text) = output(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(monitoring.join("droplets.yml")),
    );
    assert!(valid && text.contains("SUCCESS"), "{text}");
    for alert in [
        "DropletDown",
        "DiskAlmostFull",
        "BackupTooOld",
        "ThumbnailQueueGrowing",
    ] {
        assert!(
            std::fs::read_to_string(monitoring.join("droplets.yml"))
                .unwrap()
                .contains(alert)
        );
    }
}

/// Every Terraform file parses; with terraform installed, `fmt -check` and the plan module's
/// `terraform test` (the default plan within US$65) run too. terraform is in no package
/// registry: where it is missing, this says so and checks only what python-hcl2 can.
#[test]
fn the_terraform_files_parse_and_the_default_plan_is_within_budget() {
    let python = root().join("target/venv/infra/bin/python");
    if !available(
        python.is_file(),
        "python-hcl2 (target/venv/infra, infra/setup test)",
    ) {
        return;
    }
    let mut tf = files(&digitalocean(), ".tf");
    tf.extend(files(&digitalocean().join("modules/plan"), ".tf"));
    tf.extend(files(
        &digitalocean().join("modules/plan/tests"),
        ".tftest.hcl",
    ));
    assert!(tf.len() >= 6, "{tf:?}");
    let (parsed, text) = output(
        Command::new(&python)
            .args([
                "-c",
                "import hcl2, sys\nfor f in sys.argv[1:]:\n    hcl2.load(open(f))",
            ])
            .args(&tf),
    );
    assert!(parsed, "{text}");
    // The parser is not lenient: a broken block is an error.
    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(broken.path(), "resource \"x\" \"y\" {\n  a = \n").unwrap();
    let (parsed, _) = output(
        Command::new(&python)
            .args(["-c", "import hcl2, sys\nhcl2.load(open(sys.argv[1]))"])
            .arg(broken.path()),
    );
    assert!(!parsed, "python-hcl2 accepted a broken file");

    let prices: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(digitalocean().join("modules/plan/prices.json")).unwrap(),
    )
    .unwrap();
    assert!(prices["source"].as_str().unwrap().contains("2026"));

    let Some(terraform) = on_path("terraform") else {
        eprintln!(
            "\n*** terraform is not installed: `terraform fmt -check` and `terraform test` of \
             infra/digitalocean/modules/plan were NOT run (docs/deployment.md: install it) ***\n"
        );
        return;
    };
    let (formatted, text) = output(
        Command::new(&terraform)
            .args(["fmt", "-check", "-recursive"])
            .arg(digitalocean()),
    );
    assert!(formatted, "terraform fmt -check: {text}");
    // Terraform's working files go to a folder of the test's, not into the repository.
    let data = tempfile::tempdir().unwrap();
    let plan = digitalocean().join("modules/plan");
    let (ready, text) = output(
        Command::new(&terraform)
            .env("TF_DATA_DIR", data.path())
            .arg(format!("-chdir={}", plan.display()))
            .args(["init", "-backend=false", "-input=false", "-no-color"]),
    );
    assert!(ready, "{text}");
    let (tested, text) = output(
        Command::new(&terraform)
            .env("TF_DATA_DIR", data.path())
            .arg(format!("-chdir={}", plan.display()))
            .args(["test", "-no-color"]),
    );
    assert!(
        tested && text.contains("5 passed, 0 failed"),
        "terraform test: {text}"
    );
}

/// `infra/deploy` refuses a broken inventory or secrets file with one line naming the problem,
/// before it builds or reaches any host, and never prints a secret.
#[test]
fn deploy_refuses_bad_inventories_and_secrets_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = inventory(dir.path());
    let deploy = |inventory: &Path, secrets: &Path| {
        output(
            Command::new(root().join("infra/deploy"))
                .env("SHOP_SSH", "false")
                .args(["--inventory", &inventory.display().to_string()])
                .args(["--secrets", &secrets.display().to_string()])
                .args(["--binaries", &dir.path().display().to_string()]),
        )
    };
    let write = |name: &str, text: &str, mode: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (changed, _) = output(Command::new("chmod").arg(mode).arg(&path));
        assert!(changed);
        path
    };
    let secrets = write(
        "secrets.env",
        "APP__STORE__URI=mongodb://10.0.0.1/\n",
        "600",
    );
    let huge = "x".repeat(1 << 20);
    let inventories = [
        (dir.path().join("missing.json"), "No such file"),
        (write("bad.json", "{\"hosts\": ", "644"), "--inventory"),
        (
            write("list.json", "{\"hosts\": {\"value\": [1, 2]}}", "644"),
            "not a map of hosts",
        ),
        (
            write(
                "role.json",
                r#"{"hosts": {"value": {"x": {"role": "root", "ssh_address": "a", "private_ip": "10.0.0.1"}}}, "admin_cidrs": [], "blob_url": "s3://b"}"#,
                "644",
            ),
            "unknown role",
        ),
        (
            write(
                "noip.json",
                r#"{"hosts": {"value": {"x": {"role": "app", "ssh_address": "a"}}}}"#,
                "644",
            ),
            "has no private_ip",
        ),
        (write("huge.json", &huge, "644"), "--inventory"),
    ];
    for (path, said) in &inventories {
        let (ok, text) = deploy(path, &secrets);
        assert!(!ok, "{}: {text}", path.display());
        assert!(
            text.contains("deploy: ") && text.contains(said) && !text.contains("Traceback"),
            "{}: {text}",
            path.display()
        );
    }
    let bad_secrets = [
        (
            write("open.env", "AWS_SECRET_ACCESS_KEY=hunter2\n", "644"),
            "chmod 600",
        ),
        (
            write("line.env", "not a setting\n", "600"),
            "expected KEY=value",
        ),
        (
            write("quote.env", "SHOP_REDIS_PASSWORD=hunter2\"x\n", "600"),
            "SHOP_REDIS_PASSWORD",
        ),
        (dir.path().join("none.env"), "no secrets file"),
    ];
    for (path, said) in &bad_secrets {
        let (ok, text) = deploy(&good, path);
        assert!(!ok, "{}: {text}", path.display());
        assert!(
            text.contains(said) && !text.contains("hunter2") && !text.contains("Traceback"),
            "{}: {text}",
            path.display()
        );
    }
}
