"""Capacity per DigitalOcean droplet size: an app droplet's api and worker, run under the CPU and
memory of each Basic size (cgroups), with the load generators and the data droplet outside it.

    python3 bench/capacity.py                      # every size; about 25 minutes
    python3 bench/capacity.py --sizes s-1vcpu-1gb  # one

Per size, in a cgroup with the size's vCPUs (CFS quota) and memory (hard limit, swap off):
- the api and a worker (release binaries, keys on), on MongoDB (the test server) and Redis
  outside the limit, as on a data droplet; 10,000 seeded orders;
- GET /orders/{id}: the highest fixed rate (oha -q, stepping up 25%) with 0 failures, p99 under
  --p99-bound-ms and the rate reached;
- the Locust reference scenario (ReferenceUser: list and place orders, 1-3 s waits): the most
  users, stepping up, with 0 failures, p95 under --p95-bound-ms and 85% of the intended rate
  (users / 2 s; the 5 s ramp costs about 6%); a step where Locust itself used over 70% of a core says so (it, not the api, is
  then the limit);
- thumbnails a second: --pictures noisy 1.6 MB JPEGs uploaded at once, the time until the
  worker has made every thumbnail;
- the cgroup's peak memory and whether the kernel killed anything in it.

The api is measured directly (lb runs on its own droplet); the pictures go to a folder (Spaces
adds its round trips, docs/benchmarks.md). The load generators share this machine's cores with
the cgroup: on a 2-core machine the 2-vCPU sizes compete with them.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RELEASE, ROOT, TOOLS, build, create_key, free_port  # noqa: E402
from loadtest import MEAN_WAIT_S, oha_step  # noqa: E402

VENV = CACHE / "venv"
# DigitalOcean Basic sizes: slug, vCPUs, memory in MiB.
SIZES = [
    ("s-1vcpu-512mb-10gb", 1, 512),
    ("s-1vcpu-1gb", 1, 1024),
    ("s-1vcpu-2gb", 1, 2048),
    ("s-2vcpu-2gb", 2, 2048),
    ("s-2vcpu-4gb", 2, 4096),
]
CGROUP = Path("/sys/fs/cgroup")


class Limits:
    """A cgroup (v1 cpu + memory controllers, or v2) with a size's CPU and memory."""

    def __init__(self, name, cpus, mib):
        self.v2 = (CGROUP / "cgroup.controllers").exists()
        quota = cpus * 100_000
        limit = mib * 1024 * 1024
        if self.v2:
            self.dirs = [CGROUP / name]
            self.dirs[0].mkdir(exist_ok=True)
            (self.dirs[0] / "cpu.max").write_text(f"{quota} 100000")
            (self.dirs[0] / "memory.max").write_text(str(limit))
            (self.dirs[0] / "memory.swap.max").write_text("0")
        else:
            self.dirs = [CGROUP / "cpu" / name, CGROUP / "memory" / name]
            for d in self.dirs:
                d.mkdir(exist_ok=True)
            (self.dirs[0] / "cpu.cfs_period_us").write_text("100000")
            (self.dirs[0] / "cpu.cfs_quota_us").write_text(str(quota))
            (self.dirs[1] / "memory.limit_in_bytes").write_text(str(limit))
            swap = self.dirs[1] / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit))

    def wrap(self, command):
        """`command`, started inside the cgroup."""
        joins = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in self.dirs)
        return ["sh", "-c", f'{joins} && exec "$@"', "limited", *command]

    def peak_mib(self):
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        path = self.dirs[-1] / name
        return int(path.read_text()) / 1024 / 1024 if path.exists() else None

    def oom_kills(self):
        if self.v2:
            events = (self.dirs[0] / "memory.events").read_text()
        else:
            events = (self.dirs[1] / "memory.oom_control").read_text()
        for line in events.splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self):
        for d in self.dirs:
            procs = (d / "cgroup.procs").read_text().split()
            for pid in procs:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def wait_http(url, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds} s")


def request(method, url, key, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Bearer {key}"})
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.load(response)


def picture():
    """A noisy 1550x1160 JPEG (q90, ~1.6 MB), as bench/blobs.py makes it."""
    code = ("import os, sys; from PIL import Image; w, h = 1550, 1160;"
            "Image.frombytes('RGB', (w, h), os.urandom(w * h * 3)).save(sys.stdout.buffer,"
            " 'JPEG', quality=90)")
    return subprocess.run([str(VENV / "bin" / "python"), "-c", code], check=True,
                          capture_output=True).stdout


def thumbnails_per_second(api, key, count):
    data = picture()
    urls, started = [], time.time()
    for _ in range(count):
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                "filename=\"p.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
        body += data + f"\r\n--{boundary}--\r\n".encode()
        accepted = request("POST", f"{api}/images", key, body,
                           f"multipart/form-data; boundary={boundary}")
        urls.append(accepted["status_url"])
    pending = set(urls)
    deadline = time.time() + 600
    while pending and time.time() < deadline:
        for url in list(pending):
            status = request("GET", f"{api}{url}", key)["status"]
            if status in ("done", "failed"):
                pending.discard(url)
        time.sleep(0.2)
    if pending:
        return None
    return count / (time.time() - started)


def highest_rate(url, key, args):
    rate, best, steps = args.start_rate, None, []
    while rate <= args.max_rate:
        step = oha_step(url, rate, args.step_seconds, key)
        steps.append(step)
        if not (step["failures"] == 0 and step["p99_ms"] <= args.p99_bound_ms
                and step["achieved"] >= 0.95 * rate):
            break
        best = rate
        rate = int(rate * 1.25)
    return best, steps


def locust_step(api, key, users, args, work):
    prefix = work / f"locust-{users}"
    started = time.time()
    process = subprocess.Popen(
        [str(VENV / "bin" / "locust"), "-f", str(ROOT / "locustfile.py"), "--headless",
         "--only-summary", "-u", str(users), "-r", str(max(50, users // 5)),
         "-t", f"{args.locust_seconds}s", "-H", api, "--csv", str(prefix), "--stop-timeout", "5",
         "ReferenceUser"],
        cwd=ROOT, env={**os.environ, "ORDERS_API_KEY": key, "SEED_COUNT": "10000"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.time() - started
    with open(f"{prefix}_stats.csv") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    # Users spawn over the first 5 s; the rate counts the whole run.
    rps = int(total["Request Count"]) / args.locust_seconds
    return {"users": users, "rps": rps, "failures": int(total["Failure Count"]),
            "p95": float(total["95%"]), "locust_cpu": (usage.ru_utime + usage.ru_stime) / wall,
            "intended": users / MEAN_WAIT_S}


def measure(size, cpus, mib, args, stores, work):
    limits = Limits(f"shop-capacity-{size}", cpus, mib)
    procs = []
    try:
        database = f"capacity_{size.replace('-', '_')}_{int(time.time())}"
        store = f"{stores['mongodb']}{database}"
        env = dict(os.environ, APP__STORE__URI=store, APP__QUEUE__URL=stores["redis"],
                   APP__IMAGES__BLOB_URL=str(work / size / "blobs"), APP__LOG__LEVEL="warn",
                   APP__SERVER__INSTANCE=f"api-{size}")
        subprocess.run([str(RELEASE / "seed"), "reset", "--count", "10000", "--quiet"],
                       env=env, check=True, cwd=ROOT)
        key = create_key(store)
        port = free_port()
        api_env = dict(env, APP__SERVER__LISTEN=f"127.0.0.1:{port}")
        log = open(work / f"{size}.log", "w")
        for binary in ("api", "worker"):
            procs.append(subprocess.Popen(limits.wrap([str(RELEASE / binary)]), env=api_env,
                                          stdout=log, stderr=log, cwd=ROOT))
        api = f"http://127.0.0.1:{port}"
        wait_http(f"{api}/readyz")
        order = request("GET", f"{api}/orders?limit=1", key)["orders"][0]["_id"]
        result = {"size": size, "cpus": cpus, "mib": mib}

        print(f"== {size}: GET /orders/{{id}}", flush=True)
        result["get_by_id"], steps = highest_rate(f"{api}/orders/{order}", key, args)
        result["get_steps"] = steps
        print(f"   {result['get_by_id']}/s", flush=True)

        print(f"== {size}: Locust ReferenceUser", flush=True)
        result["locust"], result["locust_steps"] = None, []
        for users in args.users:
            step = locust_step(api, key, users, args, work)
            result["locust_steps"].append(step)
            print(f"   {users} users: {step['rps']:.0f} req/s, {step['failures']} failures, "
                  f"p95 {step['p95']:.0f} ms, Locust {step['locust_cpu']:.0%} of a core",
                  flush=True)
            # Users arrive over the first 5 s, so a run that keeps up averages about 94% of the
            # intended rate; 85% leaves room for Locust's own jitter.
            if (step["failures"] or step["p95"] > args.p95_bound_ms
                    or step["rps"] < 0.85 * step["intended"]):
                break
            result["locust"] = step

        print(f"== {size}: thumbnails", flush=True)
        result["thumbnails_per_s"] = thumbnails_per_second(api, key, args.pictures)
        print(f"   {result['thumbnails_per_s']}", flush=True)
        result["peak_mib"] = limits.peak_mib()
        result["oom_kills"] = limits.oom_kills()
        result["alive"] = all(p.poll() is None for p in procs)
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        limits.remove()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(s[0] for s in SIZES))
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per size (the table gives the median and the spread)")
    parser.add_argument("--start-rate", type=int, default=500)
    parser.add_argument("--max-rate", type=int, default=50_000)
    parser.add_argument("--step-seconds", type=int, default=5)
    parser.add_argument("--p99-bound-ms", type=float, default=100.0)
    parser.add_argument("--p95-bound-ms", type=float, default=500.0)
    parser.add_argument("--users", default="250,500,1000,1500",
                        help="Locust user counts, stepped up until one fails")
    parser.add_argument("--locust-seconds", type=int, default=40)
    parser.add_argument("--pictures", type=int, default=30)
    parser.add_argument("--json", default=str(CACHE / "capacity.json"))
    args = parser.parse_args()
    args.users = [int(u) for u in args.users.split(",") if u]
    if os.geteuid() != 0:
        raise SystemExit("capacity.py makes cgroups: run it as root")
    if Path(sys.prefix).resolve() != VENV.resolve():
        subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
        os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
    build("-p", "api", "-p", "seed")
    sizes = [s for s in SIZES if s[0] in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="capacity"))
    # The data droplet: MongoDB (the test server) and Redis, outside the limit.
    mongo_port, redis_port = free_port(), free_port()
    data = [
        subprocess.Popen([str(TOOLS / "bin" / "secantusd-rs"), "--host", "127.0.0.1", "--port",
                          str(mongo_port), "--storage-path", str(work / "mongo"),
                          "--log-file-max", "8MB"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "",
                          "--appendonly", "yes", "--dir", str(work)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    stores = {"mongodb": f"mongodb://127.0.0.1:{mongo_port}/",
              "redis": f"redis://127.0.0.1:{redis_port}/0"}
    time.sleep(2)
    results = []
    try:
        for size, cpus, mib in sizes:
            for _ in range(args.repeat):
                results.append(measure(size, cpus, mib, args, stores, work))
    finally:
        for p in data:
            p.terminate()
            p.wait()
    Path(args.json).write_text(json.dumps(results, indent=1))

    def median(rows, key):
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            return "-"
        spread = f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""
        return f"{statistics.median(values):,.1f}{spread}" if key == "thumbnails_per_s" \
            else f"{statistics.median(values):,.0f}{spread}"

    print(f"\n{args.repeat} run(s) per size; median (min-max); raw figures in {args.json}")
    print("| size | GET by id req/s | Locust reference: users, req/s | thumbnails/s | "
          "peak MiB | OOM kills |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size, _, _ in sizes:
        rows = [r for r in results if r["size"] == size]
        locust = [r["locust"] for r in rows if r["locust"]]
        locust_text = (f"{statistics.median(s['users'] for s in locust):.0f} users, "
                       f"{statistics.median(s['rps'] for s in locust):.0f}") if locust else "-"
        if any(s["locust_cpu"] > 0.7 for s in locust):
            locust_text += " (Locust-bound: over 70% of a core)"
        if any(r["locust"] and r["locust"] == r["locust_steps"][-1] for r in rows):
            locust_text += " (every step passed: more users needed)"
        peak = [r["peak_mib"] for r in rows if r["peak_mib"] is not None]
        print(f"| {size} | {median(rows, 'get_by_id')} | {locust_text} | "
              f"{median(rows, 'thumbnails_per_s')} | {max(peak) if peak else 0:.0f} | "
              f"{sum(r['oom_kills'] for r in rows)} |")


if __name__ == "__main__":
    main()
