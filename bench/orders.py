#!/usr/bin/env python3
"""Benchmark: the orders API on SQLite beside a bare axum handler (the framework's ceiling).

Measures, with oha on one core and the server pinned to the other:
  - GET /orders/{id}, POST /orders and the first list page on the api (1,000 seeded orders),
  - the same GET against `ceiling` (axum returning a fixed JSON order: no store, no middleware),
  - the first list page's p50 with 1,000 and with 1,000,000 orders loaded,
  - POST /orders with the default `store.synchronous = "full"` (every commit fsynced) beside
    `"normal"` (fsynced at checkpoints): what durability costs,
  - GET /orders/{id} with keys off (`auth.required = false`) and with an unknown key (401, a
    store lookup each: unknown keys are not cached): what the key check costs.
Every other case sends an admin key (`api keys create`), as clients of the default settings do.
Prints requests/s, requests per server CPU-second (from /proc) and the ratios; each figure is
the median of --repeat runs, with the spread (min-max) beside it.

Usage: bench/orders.py [--seconds 5] [--repeat 3] [--connections 64] [--big 1000000] [--writes]
(--writes: only the two POST cases.)
Needs oha and taskset: `infra/setup bench` installs them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from common import (CACHE, GENERATOR_CPU, RELEASE, SERVER_CPU, Server, bearer, build,
                    create_key, fmt, run, summary)

ORDER = {"product": "Laptop", "quantity": 1, "customer_name": "John Doe",
         "customer_address": "123 Main St"}


# A well-formed key that no store holds.
UNKNOWN_KEY = "shop_0123456789abcdef_" + "A" * 43


def api(db, name, synchronous="full", auth=True, under=()):
    """An api replica on the SQLite file `db`; `under` prefixes its command (valgrind, say)."""
    return Server([*under, str(RELEASE / "api")], env={
        "APP__SERVER__LISTEN": "127.0.0.1:0", "APP__SERVER__INSTANCE": name,
        "APP__STORE__URI": f"sqlite://{db}", "APP__LOG__LEVEL": "info",
        "APP__STORE__SYNCHRONOUS": synchronous, "APP__AUTH__REQUIRED": str(auth).lower()})


def seed(db, count):
    subprocess.run([str(RELEASE / "seed"), "reset", "--count", str(count), "--quiet"],
                   env={**os.environ, "APP__STORE__URI": f"sqlite://{db}"}, check=True,
                   stdout=subprocess.DEVNULL)


def first_id(server, key):
    request = urllib.request.Request(server.url + "/orders?limit=1",
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["orders"][0]["_id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--big", type=int, default=1_000_000, help="orders in the large set")
    parser.add_argument("--writes", action="store_true", help="only POST, full vs normal sync")
    args = parser.parse_args()
    if args.writes:
        return writes(args)
    build("-p", "api", "-p", "seed", "--bins", "--example", "ceiling")
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    small = work / "small.db"
    seed(small, 1000)
    key = create_key(f"sqlite://{small}")
    big = CACHE / f"orders-{args.big}.db"
    if not big.exists():
        print(f"seeding {args.big:,} orders into {big} (once)", file=sys.stderr)
        seed(big, args.big)
    big_key = create_key(f"sqlite://{big}")

    rows = {}
    servers = []
    try:
        ceiling = Server([str(RELEASE / "examples" / "ceiling"), "127.0.0.1:0"])
        servers.append(ceiling)
        small_api = api(small, "bench-small")
        servers.append(small_api)
        big_api = api(big, "bench-big")
        servers.append(big_api)
        open_api = api(small, "bench-open", auth=False)
        servers.append(open_api)
        order_id = first_id(small_api, key)
        post = ["-m", "POST", "-T", "application/json", "-d", json.dumps(ORDER), *bearer(key)]
        cases = [
            ("ceiling: GET /orders/{id}", ceiling, f"/orders/{order_id}", ()),
            ("api: GET /orders/{id}", small_api, f"/orders/{order_id}", bearer(key)),
            ("api, keys off: GET /orders/{id}", open_api, f"/orders/{order_id}", ()),
            ("api, unknown key: GET /orders/{id}", small_api, f"/orders/{order_id}",
             bearer(UNKNOWN_KEY)),
            ("api: GET /orders (first page, 100)", small_api, "/orders", bearer(key)),
            ("api: POST /orders", small_api, "/orders", post),
        ]
        for _ in range(args.repeat):
            for name, server, path, extra in cases:
                rows.setdefault(name, []).append(run(
                    server, server.url + path,
                    ["-z", f"{args.seconds}s", "-c", str(args.connections), *extra]))
        latency = {}
        for _ in range(args.repeat):
            for label, server in (("1k", api(small, "bench-1k")), (f"{args.big:,}", big_api)):
                if server is not big_api:
                    servers.append(server)
                sent = bearer(big_key if server is big_api else key)
                latency.setdefault(label, []).append(
                    run(server, server.url + "/orders",
                        ["-z", f"{args.seconds}s", "-c", "1", *sent]))
    finally:
        for server in servers:
            server.stop()

    print(f"\n## bench/orders: {args.connections} connections, {args.seconds} s per run, "
          f"median of {args.repeat} (min-max); server on CPU {SERVER_CPU}, oha on CPU {GENERATOR_CPU}\n")
    print("| case | requests/s | requests per server CPU-s | p50 ms | p99 ms | statuses |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, runs in rows.items():
        codes = sorted({code for r in runs for code in r["codes"]})
        errors = sum(sum(r["errors"].values()) for r in runs)
        print(f"| {name} | {fmt(runs, 'rps')} | {fmt(runs, 'per_cpu_s')} | "
              f"{fmt(runs, 'p50_ms', 2)} | {fmt(runs, 'p99_ms', 2)} | "
              f"{','.join(codes)}{f' errors={errors}' if errors else ''} |")
    ceiling_cpu = summary(rows["ceiling: GET /orders/{id}"], "per_cpu_s")[0]
    get_cpu = summary(rows["api: GET /orders/{id}"], "per_cpu_s")[0]
    print(f"\nGET by id per CPU-second vs ceiling: {get_cpu / ceiling_cpu:.2f}x (goal >= 0.5x)")
    open_cpu = summary(rows["api, keys off: GET /orders/{id}"], "per_cpu_s")[0]
    unknown_cpu = summary(rows["api, unknown key: GET /orders/{id}"], "per_cpu_s")[0]
    print(f"key check: {1e6 / get_cpu - 1e6 / open_cpu:.1f} µs of server CPU per request "
          f"(GET by id with a key vs keys off); an unknown key's 401 costs "
          f"{1e6 / unknown_cpu:.1f} µs against {1e6 / get_cpu:.1f} µs for the answer")
    small_p50 = summary(latency["1k"], "p50_ms")[0]
    big_label = f"{args.big:,}"
    big_p50 = summary(latency[big_label], "p50_ms")[0]
    print(f"first list page p50, 1 connection: 1k orders {fmt(latency['1k'], 'p50_ms', 3)} ms, "
          f"{big_label} orders {fmt(latency[big_label], 'p50_ms', 3)} ms: "
          f"ratio {big_p50 / small_p50:.2f}x (goal <= 1.2x)")


def writes(args):
    """POST /orders with each `store.synchronous`, on files of their own."""
    build("-p", "api", "-p", "seed", "--bins")
    work = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    post = ["-m", "POST", "-T", "application/json", "-d", json.dumps(ORDER)]
    rows = {}
    servers = []
    try:
        for synchronous in ("full", "normal"):
            db = work / f"{synchronous}.db"
            seed(db, 1000)
            server = api(db, f"bench-{synchronous}", synchronous)
            servers.append(server)
            rows[synchronous] = (server, create_key(f"sqlite://{db}"))
        results = {}
        for _ in range(args.repeat):
            for synchronous, (server, key) in rows.items():
                results.setdefault(synchronous, []).append(run(
                    server, server.url + "/orders",
                    ["-z", f"{args.seconds}s", "-c", str(args.connections), *post,
                     *bearer(key)]))
    finally:
        for server in servers:
            server.stop()
    print(f"\n## bench/orders --writes: POST /orders, {args.connections} connections, "
          f"{args.seconds} s per run, median of {args.repeat} (min-max)\n")
    print("| store.synchronous | requests/s | p50 ms | p99 ms | statuses |")
    print("| --- | --- | --- | --- | --- |")
    for synchronous, runs in results.items():
        codes = sorted({code for r in runs for code in r["codes"]})
        print(f"| {synchronous} | {fmt(runs, 'rps')} | {fmt(runs, 'p50_ms', 2)} | "
              f"{fmt(runs, 'p99_ms', 2)} | {','.join(codes)} |")
    full = summary(results["full"], "rps")[0]
    normal = summary(results["normal"], "rps")[0]
    print(f"\nfull / normal: {full / normal:.2f}x the requests/s")


if __name__ == "__main__":
    main()
