"""Capacity per DigitalOcean droplet size: an app droplet's api and worker, run under the CPU and
memory of each Basic size (cgroups), with the load generators and the data droplet outside it.

    sudo python3 bench/capacity.py                        # every size; about 20 minutes a run
    sudo python3 bench/capacity.py --sizes s-1vcpu-1gb    # one
    python3 bench/capacity.py --table-only                # the last run's table again

Per size, in a cgroup with the size's vCPUs (CFS quota) and memory (hard limit, swap off). A size
with fewer vCPUs than the machine has cores also gets cores of its own (cpuset: the last ones);
this script, oha, Locust and the data side are then pinned to the others, so they never take the
droplet's CPU, but they compete with each other there.
- the api and a worker (release binaries, keys on), on MongoDB (the test server) and Redis
  outside the limit, as on a data droplet; 10,000 seeded orders;
- GET /orders/{id}: the highest fixed rate (oha -q, stepping up 25%) with 0 failures, p99 under
  --p99-bound-ms and the rate reached; the api and worker's CPU at that rate, and the rate a
  whole vCPU would serve at that CPU per request (the honest figure when the generators or the
  data side ran out first: every step records their CPU too);
- thumbnails a second: --pictures noisy 1.6 MB JPEGs uploaded at once, the time until the
  worker has made every thumbnail;
- the Locust reference scenario (ReferenceUser: list 100 orders and place one, 1-3 s waits): the
  most users, stepping up, with 0 failures, p95 under --p95-bound-ms and 85% of the intended rate
  (users / 2 s; the 5 s ramp costs about 6%); once on MongoDB (the data droplet) and once on
  SQLite in the droplet (the single-droplet plan); the step that failed names what ran out (the
  app, Locust, or the data side);
- the cgroup's peak memory and whether the kernel killed anything in it.

The api is measured directly (lb runs on its own droplet); the pictures go to a folder (Spaces
adds its round trips, docs/benchmarks.md).
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
from loadtest import MEAN_WAIT_S, cpu_shares, max_rps, stack_cpu  # noqa: E402

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
    """A cgroup (v1 cpu + memory + cpuset controllers, or v2) with a size's CPU and memory,
    and, when given, its own cores (`cores`, a cpuset list such as "1")."""

    def __init__(self, name, cpus, mib, cores=None):
        self.v2 = (CGROUP / "cgroup.controllers").exists()
        quota = cpus * 100_000
        limit = mib * 1024 * 1024
        if self.v2:
            self.dirs = [CGROUP / name]
            self.dirs[0].mkdir(exist_ok=True)
            (self.dirs[0] / "cpu.max").write_text(f"{quota} 100000")
            (self.dirs[0] / "memory.max").write_text(str(limit))
            (self.dirs[0] / "memory.swap.max").write_text("0")
            if cores is not None:
                (self.dirs[0] / "cpuset.cpus").write_text(cores)
        else:
            self.dirs = [CGROUP / "cpu" / name, CGROUP / "memory" / name]
            if cores is not None:
                self.dirs.append(CGROUP / "cpuset" / name)
            for d in self.dirs:
                d.mkdir(exist_ok=True)
            (self.dirs[0] / "cpu.cfs_period_us").write_text("100000")
            (self.dirs[0] / "cpu.cfs_quota_us").write_text(str(quota))
            (self.dirs[1] / "memory.limit_in_bytes").write_text(str(limit))
            swap = self.dirs[1] / "memory.memsw.limit_in_bytes"
            if swap.exists():
                swap.write_text(str(limit))
            if cores is not None:
                (self.dirs[2] / "cpuset.mems").write_text(
                    (CGROUP / "cpuset" / "cpuset.mems").read_text().strip())
                (self.dirs[2] / "cpuset.cpus").write_text(cores)

    def wrap(self, command):
        """`command`, started inside the cgroup."""
        joins = " && ".join(f"echo $$ > {d}/cgroup.procs" for d in self.dirs)
        return ["sh", "-c", f'{joins} && exec "$@"', "limited", *command]

    def peak_mib(self):
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        path = self.dirs[0 if self.v2 else 1] / name
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


def pin(pids, cores):
    """Every thread of each process onto `cores` (a set of CPU numbers)."""
    listed = ",".join(str(c) for c in sorted(cores))
    for pid in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", listed, str(pid)], check=True,
                       stdout=subprocess.DEVNULL)


def cpu_groups(app, data):
    """The app droplet's processes (api, worker) and the data side's, by pid."""
    return {"app": [p.pid for p in app], "data": [p.pid for p in data]}


def locust_step(api, key, users, args, work, groups):
    prefix = work / f"locust-{users}-{uuid.uuid4().hex[:6]}"
    started, before = time.time(), stack_cpu(groups)
    process = subprocess.Popen(
        [str(VENV / "bin" / "locust"), "-f", str(ROOT / "locustfile.py"), "--headless",
         "--only-summary", "-u", str(users), "-r", str(max(50, users // 5)),
         "-t", f"{args.locust_seconds}s", "-H", api, "--csv", str(prefix), "--stop-timeout", "5",
         "ReferenceUser"],
        cwd=ROOT, env={**os.environ, "ORDERS_API_KEY": key, "SEED_COUNT": "10000"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.time() - started
    shares = cpu_shares(before, stack_cpu(groups), wall)
    with open(f"{prefix}_stats.csv") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    # Users spawn over the first 5 s; the rate counts the whole run.
    rps = int(total["Request Count"]) / args.locust_seconds
    return {"users": users, "rps": rps, "failures": int(total["Failure Count"]),
            "p95": float(total["95%"]), "locust_cpu": (usage.ru_utime + usage.ru_stime) / wall,
            "data_cpu": shares["data"], "app_cpu": shares["app"], "intended": users / MEAN_WAIT_S}


def start_app(size, limits, store, stores, work, procs):
    """The api and a worker in the cgroup, on `store`, seeded with 10,000 orders; returns the
    api's address and an admin key."""
    env = dict(os.environ, APP__STORE__URI=store, APP__QUEUE__URL=stores["redis"],
               APP__IMAGES__BLOB_URL=str(work / size / "blobs"), APP__LOG__LEVEL="warn",
               APP__SERVER__INSTANCE=f"api-{size}")
    subprocess.run([str(RELEASE / "seed"), "reset", "--count", "10000", "--quiet"],
                   env=env, check=True, cwd=ROOT)
    key = create_key(store)
    port = free_port()
    api_env = dict(env, APP__SERVER__LISTEN=f"127.0.0.1:{port}")
    log = open(work / f"{size}.log", "a")
    for binary in ("api", "worker"):
        procs.append(subprocess.Popen(limits.wrap([str(RELEASE / binary)]), env=api_env,
                                      stdout=log, stderr=log, cwd=ROOT))
    api = f"http://127.0.0.1:{port}"
    wait_http(f"{api}/readyz")
    return api, key


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def locust_steps(api, key, args, work, groups, label):
    """Steps Locust's users up; returns the last step that kept up, and every step."""
    best, steps = None, []
    for users in args.users:
        step = locust_step(api, key, users, args, work, groups)
        steps.append(step)
        print(f"   {label}, {users} users: {step['rps']:.0f} req/s, {step['failures']} failures, "
              f"p95 {step['p95']:.0f} ms; CPU: app {step['app_cpu']:.0%}, Locust "
              f"{step['locust_cpu']:.0%}, data {step['data_cpu']:.0%}", flush=True)
        # Users arrive over the first 5 s, so a run that keeps up averages about 94% of the
        # intended rate; 85% leaves room for Locust's own jitter.
        if (step["failures"] or step["p95"] > args.p95_bound_ms
                or step["rps"] < 0.85 * step["intended"]):
            break
        best = step
    return best, steps


def measure(size, cpus, mib, args, stores, work, data):
    everything = set(range(os.cpu_count()))
    # A 1-vCPU size gets a core of its own (the last); the generators and the data side share
    # the others. Sizes as large as the machine share every core with them.
    mine = set(sorted(everything)[-cpus:]) if cpus < len(everything) else everything
    others = everything - mine or everything
    os.sched_setaffinity(0, others)
    pin([p.pid for p in data], others)
    limits = Limits(f"shop-capacity-{size}", cpus, mib,
                    ",".join(str(c) for c in sorted(mine)) if mine != everything else None)
    procs = []
    try:
        result = {"size": size, "cpus": cpus, "mib": mib, "own_cores": mine != everything}
        database = f"capacity_{size.replace('-', '_')}_{int(time.time())}"
        api, key = start_app(size, limits, f"{stores['mongodb']}{database}", stores, work, procs)
        order = request("GET", f"{api}/orders?limit=1", key)["orders"][0]["_id"]

        print(f"== {size}: GET /orders/{{id}}", flush=True)
        result["get_by_id"], steps = max_rps(f"{api}/orders/{order}",
                                             argparse.Namespace(**vars(args), api_key=key),
                                             cpu_groups(procs, data))
        result["get_steps"] = steps
        # What a full vCPU would serve at the CPU per request measured at the best step: the
        # honest figure when the generators and the data side, not the api, ran out of CPU.
        best = next((s for s in steps if s["rate"] == result["get_by_id"]), None)
        result["get_by_id_app_cpu"] = best["cpu"]["app"] if best else None
        result["get_by_id_per_vcpu"] = (best["achieved"] / best["cpu"]["app"]
                                        if best and best["cpu"]["app"] else None)
        last = steps[-1]
        print(f"   {result['get_by_id']}/s with the app at {result['get_by_id_app_cpu'] or 0:.0%}"
              f" of a core ({result['get_by_id_per_vcpu'] or 0:,.0f}/s per full vCPU); "
              f"the next step: {last['achieved']:.0f}/s, p99 {last['p99_ms']:.0f} ms, app "
              f"{last['cpu']['app']:.0%}, data side {last['cpu']['data']:.0%} of a core",
              flush=True)

        print(f"== {size}: thumbnails", flush=True)
        result["thumbnails_per_s"] = thumbnails_per_second(api, key, args.pictures)
        print(f"   {result['thumbnails_per_s']}", flush=True)

        print(f"== {size}: Locust ReferenceUser", flush=True)
        result["locust"], result["locust_steps"] = locust_steps(
            api, key, args, work, cpu_groups(procs, data), "MongoDB")
        stop(procs)
        sqlite = f"sqlite://{work / size / f'orders-{uuid.uuid4().hex[:6]}.db'}"
        (work / size).mkdir(parents=True, exist_ok=True)
        api, key = start_app(size, limits, sqlite, stores, work, procs)
        result["locust_sqlite"], result["locust_sqlite_steps"] = locust_steps(
            api, key, args, work, cpu_groups(procs, data), "SQLite")

        result["peak_mib"] = limits.peak_mib()
        result["oom_kills"] = limits.oom_kills()
        result["alive"] = all(p.poll() is None for p in procs)
        return result
    finally:
        stop(procs)
        limits.remove()
        os.sched_setaffinity(0, everything)
        pin([p.pid for p in data], everything)


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
    parser.add_argument("--users", default="250,500,1000,2000,4000",
                        help="Locust user counts, stepped up until one fails")
    parser.add_argument("--locust-seconds", type=int, default=40)
    parser.add_argument("--pictures", type=int, default=30)
    parser.add_argument("--json", default=str(CACHE / "capacity.json"))
    parser.add_argument("--table-only", action="store_true",
                        help="print the table from --json again, measuring nothing")
    args = parser.parse_args()
    args.users = [int(u) for u in args.users.split(",") if u]
    sizes = [s for s in SIZES if s[0] in args.sizes.split(",")]
    if args.table_only:
        if not Path(args.json).exists():
            raise SystemExit(f"no figures at {args.json}: run bench/capacity.py first")
        results = json.loads(Path(args.json).read_text())
        table([s for s in sizes if any(r["size"] == s[0] for r in results)], results, args)
        return
    if os.geteuid() != 0:
        raise SystemExit("capacity.py makes cgroups: run it as root")
    if Path(sys.prefix).resolve() != VENV.resolve():
        subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
        os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
    build("-p", "api", "-p", "seed")
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
                results.append(measure(size, cpus, mib, args, stores, work, data))
    finally:
        for p in data:
            p.terminate()
            p.wait()
    Path(args.json).write_text(json.dumps(results, indent=1))
    table(sizes, results, args)


def table(sizes, results, args):
    """The markdown table: per size, the median of its runs and their spread."""

    def median(rows, key):
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            return "-"
        spread = f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""
        return f"{statistics.median(values):,.1f}{spread}" if key == "thumbnails_per_s" \
            else f"{statistics.median(values):,.0f}{spread}"

    def share(rows):
        values = [r["get_by_id_app_cpu"] for r in rows if r["get_by_id_app_cpu"] is not None]
        return f"{statistics.median(values):.0%} of a core" if values else "-"

    def locust_text(rows, name):
        best = [r[name] for r in rows if r[name]]
        if best:
            text = (f"{statistics.median(s['users'] for s in best):,.0f} users, "
                    f"{statistics.median(s['rps'] for s in best):,.0f} req/s, "
                    f"p95 {statistics.median(s['p95'] for s in best):,.0f} ms, app at "
                    f"{statistics.median(s['app_cpu'] for s in best):.0%} of a core")
            if len(best) < len(rows):
                text += f" in {len(best)} of {len(rows)} runs"
        else:
            first = [r[f"{name}_steps"][0] for r in rows]
            text = (f"not {first[0]['users']:,} users: p95 "
                    f"{statistics.median(s['p95'] for s in first):,.0f} ms, "
                    f"{sum(s['failures'] for s in first)} failures")
        # What held the next step back: the step after the best one, in each run.
        passed, shares = False, {"app": [], "Locust": [], "data side": []}
        for r in rows:
            steps = r[f"{name}_steps"]
            if r[name] is not None and r[name] == steps[-1]:
                passed = True
                continue
            failed = steps[steps.index(r[name]) + 1] if r[name] else steps[0]
            if failed["app_cpu"] > 0.85 * r["cpus"]:
                shares["app"].append(failed["app_cpu"])
            if failed["locust_cpu"] > 0.7:
                shares["Locust"].append(failed["locust_cpu"])
            if failed["data_cpu"] > 0.7:
                shares["data side"].append(failed["data_cpu"])
        limits = ["every step passed"] if passed else []
        limits += [f"{who} at {min(v):.0%}-{max(v):.0%} of a core" if len(v) > 1
                   else f"{who} at {v[0]:.0%} of a core" for who, v in shares.items() if v]
        return text + (f" (next step: {'; '.join(limits)})" if limits else "")

    runs = max(sum(r["size"] == size for r in results) for size, _, _ in sizes)
    print(f"\n{runs} run(s) per size; median (min-max); raw figures in {args.json}")
    print("| size | own cores | GET by id req/s | app CPU at that rate | GET by id per full "
          "vCPU | Locust reference on MongoDB | "
          "Locust reference on SQLite | thumbnails/s | peak MiB | OOM kills |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size, _, _ in sizes:
        rows = [r for r in results if r["size"] == size]
        peak = [r["peak_mib"] for r in rows if r["peak_mib"] is not None]
        print(f"| {size} | {'yes' if rows[0]['own_cores'] else 'no'} | "
              f"{median(rows, 'get_by_id')} | {share(rows)} | "
              f"{median(rows, 'get_by_id_per_vcpu')} | {locust_text(rows, 'locust')} | "
              f"{locust_text(rows, 'locust_sqlite')} | "
              f"{median(rows, 'thumbnails_per_s')} | {max(peak) if peak else 0:.0f} | "
              f"{sum(r['oom_kills'] for r in rows)} |")


if __name__ == "__main__":
    main()
