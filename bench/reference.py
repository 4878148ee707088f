#!/usr/bin/env python3
"""Benchmark: our api on MongoDB beside the reference stack (Flask + Flask-PyMongo, gunicorn with
8 gevent workers) on the same MongoDB-compatible server (SecantusDB), both from the same seeded
orders.

For each endpoint: requests/s and requests per CPU-second of the service's processes (the
database's CPU is not counted for either), closed loop with --connections; then the highest
fixed rate (oha -q) each service holds for GET /orders/{id} with 0% failures and p99 under
--p99-bound-ms. The reference's list returns every order (as it did); ours returns one page of
100. Each figure is the median of --repeat runs (min-max).

Last, Locust runs the reference's scenario (locustfile.py ReferenceUser: each user lists the
orders and places one, waiting 1-3 s) against each, from the same seed, reporting failures,
latency and requests per CPU-second.

Usage: bench/reference.py [--orders 1000] [--seconds 5] [--repeat 3] [--connections 32]
                          [--users 500] [--spawn-rate 50] [--locust-seconds 30]
Needs `infra/setup bench` (oha, taskset, the reference's virtualenv) and `infra/setup test`
(the test server).
"""

import argparse
import csv
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from common import (CACHE, GENERATOR_CPU, RELEASE, ROOT, TOOLS, Server, build, fmt, free_port,
                    run, summary)

HERE = Path(__file__).resolve().parent
VENV = CACHE / "venv"
ORDER = {"product": "Laptop", "quantity": 1, "customer_name": "John Doe",
         "customer_address": "123 Main St"}
DATABASE = "orders_db"


def seed(uri, count):
    subprocess.run([str(RELEASE / "seed"), "reset", "--count", str(count), "--quiet",
                    "--batch", "1000"],
                   env={**os.environ, "APP__STORE__URI": uri, "APP__STORE__DATABASE": DATABASE},
                   check=True, stdout=subprocess.DEVNULL)


def ours(uri):
    return Server([str(RELEASE / "api")], env={
        "APP__SERVER__LISTEN": "127.0.0.1:0", "APP__SERVER__INSTANCE": "bench",
        "APP__STORE__URI": uri, "APP__STORE__DATABASE": DATABASE, "APP__LOG__LEVEL": "info"})


def reference(uri):
    port = free_port()
    return Server([str(VENV / "bin" / "gunicorn"), "-w", "8", "-k", "gevent",
                   "-b", f"127.0.0.1:{port}", "--chdir", str(HERE / "reference"), "--log-level", "warning",
                   "app:app"],
                  env={"MONGO_URI": uri + DATABASE}, url=f"http://127.0.0.1:{port}/orders/x")


def ids(server, count):
    found, after = [], None
    while len(found) < count:
        url = server.url + "/orders?limit=1000" + (f"&after={after}" if after else "")
        with urllib.request.urlopen(url) as response:
            page = json.load(response)
        found += [o["_id"] for o in page["orders"]]
        after = page["next"]
        if after is None:
            break
    return found[:count]


def cases(order_ids):
    body = ["-T", "application/json", "-d", json.dumps(ORDER)]
    return [
        ("GET /orders/{id}", f"/orders/{order_ids[0]}", []),
        ("POST /orders", "/orders", ["-m", "POST", *body]),
        ("PUT /orders/{id} (all fields)", f"/orders/{order_ids[1]}", ["-m", "PUT", *body]),
        # oha reads the URLs from the file named where the URL would be.
        ("DELETE /orders/{id}", None, ["-m", "DELETE", "--urls-from-file"]),
        ("GET /orders (ours: 100; reference: all)", "/orders", []),
    ]


def locust(server, args):
    """The reference scenario (locustfile.py ReferenceUser), headless, from the same seed."""
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "run"
        before = server.cpu_seconds()
        subprocess.run(["taskset", "-c", GENERATOR_CPU, str(VENV / "bin" / "locust"),
                        "-f", str(ROOT / "locustfile.py"), "--headless", "--only-summary",
                        "-u", str(args.users), "-r", str(args.spawn_rate),
                        "-t", f"{args.locust_seconds}s", "-H", server.url, "--csv", str(prefix),
                        "ReferenceUser"], check=False, capture_output=True)
        cpu = server.cpu_seconds() - before
        with open(f"{prefix}_stats.csv") as stats:
            total = [row for row in csv.DictReader(stats) if row["Name"] == "Aggregated"][0]
    requests = int(total["Request Count"])
    return {"requests": requests, "failures": int(total["Failure Count"]),
            "rps": float(total["Requests/s"]), "p50_ms": float(total["50%"]),
            "p95_ms": float(total["95%"]), "max_ms": float(total["Max Response Time"]),
            "per_cpu_s": requests / cpu if cpu > 0 else float("nan")}


def max_rate(server, url, rates, seconds, bound_ms):
    """The highest rate held with no failure, >= 95% of the rate achieved, p99 under bound."""
    best = 0
    for rate in rates:
        result = run(server, url, ["-z", f"{seconds}s", "-q", str(rate), "-c", "256"])
        ok = (not result["errors"]
              and all(code.startswith("2") for code in result["codes"])
              and result["rps"] >= 0.95 * rate and result["p99_ms"] <= bound_ms)
        if not ok:
            break
        best = rate
    return best


def measure(name, start, uri, args, order_ids):
    seed(uri, args.orders)
    server = start(uri)
    rows = {}
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".urls", delete=False) as urls:
            urls.write("".join(f"{server.url}/orders/{i}\n" for i in order_ids[2:]))
        for _ in range(args.repeat):
            for case, path, extra in cases(order_ids):
                url = server.url + path if path else urls.name
                if path is None:
                    extra = [*extra, "-n", str(max(1, (len(order_ids) - 2) // args.repeat))]
                else:
                    extra = [*extra, "-z", f"{args.seconds}s"]
                rows.setdefault(case, []).append(
                    run(server, url, ["-c", str(args.connections), *extra]))
        seed(uri, args.orders)
        rate = max_rate(server, f"{server.url}/orders/{order_ids[0]}", args.rates,
                        args.seconds, args.p99_bound_ms)
        seed(uri, args.orders)
        swarm = locust(server, args)
    finally:
        server.stop()
        os.unlink(urls.name)
    print(f"{name}: done", flush=True)
    return rows, rate, swarm


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--p99-bound-ms", type=float, default=500)
    parser.add_argument("--users", type=int, default=500, help="Locust users")
    parser.add_argument("--spawn-rate", type=int, default=50, help="Locust users started per second")
    parser.add_argument("--locust-seconds", type=int, default=30)
    parser.add_argument("--rates", type=lambda s: [int(r) for r in s.split(",")],
                        default=[250, 500, 1000, 2000, 4000, 8000, 16000, 32000])
    args = parser.parse_args()
    build("-p", "api", "-p", "seed", "--bins")
    if not (VENV / "bin" / "gunicorn").exists():
        raise SystemExit("run `infra/setup bench` first: the reference's virtualenv is missing")
    storage = tempfile.mkdtemp(prefix="bench-mongo-")
    port = free_port()
    database = Server([str(TOOLS / "bin" / "secantusd-rs"), "--host", "127.0.0.1", "--port",
                       str(port), "--storage-path", storage, "--log-file-max", "8MB"],
                      port=port)
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        seed(uri, args.orders)
        probe = ours(uri)
        order_ids = ids(probe, args.orders)
        probe.stop()
        results = {"ours": measure("ours", ours, uri, args, order_ids),
                   "reference": measure("reference", reference, uri, args, order_ids)}
    finally:
        database.stop()

    print(f"\n## bench/reference: {args.orders:,} seeded orders, {args.connections} connections, "
          f"{args.seconds} s per run, median of {args.repeat} (min-max)\n")
    print("| endpoint | ours req/s | ours req per CPU-s | reference req/s | "
          "reference req per CPU-s | per CPU-s ratio | statuses (ours / reference) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ours_rows, ours_rate, ours_swarm = results["ours"]
    ref_rows, ref_rate, ref_swarm = results["reference"]
    for case in ours_rows:
        mine, theirs = ours_rows[case], ref_rows[case]
        ratio = summary(mine, "per_cpu_s")[0] / summary(theirs, "per_cpu_s")[0]
        codes = lambda runs: ",".join(sorted({c for r in runs for c in r["codes"]}))  # noqa: E731
        print(f"| {case} | {fmt(mine, 'rps')} | {fmt(mine, 'per_cpu_s')} | {fmt(theirs, 'rps')} | "
              f"{fmt(theirs, 'per_cpu_s')} | {ratio:.1f}x | {codes(mine)} / {codes(theirs)} |")
    print(f"\nhighest fixed rate with 0% failures, GET /orders/{{id}} (p99 <= "
          f"{args.p99_bound_ms:.0f} ms): ours {ours_rate:,}/s, reference {ref_rate:,}/s")
    print(f"\nLocust, reference scenario (GET /orders + POST /orders, wait 1-3 s), {args.users} "
          f"users at {args.spawn_rate}/s, {args.locust_seconds} s:\n")
    print("| service | requests | failures | requests/s | p50 ms | p95 ms | max ms | "
          "requests per CPU-s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, swarm in (("ours", ours_swarm), ("reference", ref_swarm)):
        print(f"| {name} | {swarm['requests']:,} | {swarm['failures']:,} | {swarm['rps']:,.0f} | "
              f"{swarm['p50_ms']:,.0f} | {swarm['p95_ms']:,.0f} | {swarm['max_ms']:,.0f} | "
              f"{swarm['per_cpu_s']:,.0f} |")
    print(f"\nper CPU-second under Locust: {ours_swarm['per_cpu_s'] / ref_swarm['per_cpu_s']:.1f}x "
          "(goal >= 20x)")


if __name__ == "__main__":
    main()
