#!/usr/bin/env python3
"""Benchmark: user-space instructions per request of lb and of the api, counted by callgrind.

CPU time on a shared VM moves by 10-30% between runs of the same binary; callgrind's count of
executed instructions (valgrind, user space: our code, pingora, tokio, libc; not the kernel)
moves by well under 1%, so it shows what a change buys even when the CPU figures cannot. It is
not time: a memcpy instruction and a cache miss count the same.

- lb: proxying GET /orders/{id} to three trivial upstreams (`api/examples/ceiling.rs`), wrk at
  16 connections, the same settings as bench/lb.py;
- api: GET /orders/{id} on SQLite with an API key, oha at 16 connections, as bench/orders.py.

Each runs under `valgrind --tool=callgrind` (~50x slower): a warm-up, the counters zeroed, a
10 s run, the counters dumped. Prints instructions per request and the top functions by
inclusive share, from which docs/benchmarks.md's breakdowns come.

Usage: bench/instructions.py [--only lb|api] [--seconds 10] [--top 25]
Needs `infra/setup bench` (valgrind, wrk, oha, taskset).
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from common import GENERATOR_CPU, RELEASE, Server, build, create_key, free_port
from lb import trivial_upstreams

PATH = "/orders/677485805345454400000000"


def callgrind(command, env, out):
    """Starts `command` under callgrind; returns the process once its port answers."""
    return subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                             *command], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(port, proc, seconds=120):
    import socket
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the program under callgrind exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


def counted(proc, out, load):
    """Zeroes the counters, runs `load` (returns the requests it made), dumps them: the total
    instructions and the dump file."""
    load(3)
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    requests = load(None)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    proc.kill()
    proc.wait()
    dump = sorted(Path(out).parent.glob(Path(out).name + ".*"))[-1]
    return requests, dump


def wrk_requests(url, seconds):
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, "wrk", "-t1", "-c16", f"-d{seconds}s",
                          url], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def oha_requests(url, seconds, headers):
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, "oha", "--no-tui", "--output-format",
                          "json", "-z", f"{seconds}s", "-c", "16", *headers, url],
                         check=True, capture_output=True, text=True).stdout
    return sum(json.loads(out)["statusCodeDistribution"].values())


def report(name, requests, dump, top):
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--auto=no", str(dump)],
                          check=True, capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \([ \d.]+%\)\s+PROGRAM TOTALS", text).group(1)
                .replace(",", ""))
    print(f"\n## {name}: {requests:,} requests, {total / requests:,.0f} instructions per request"
          f" (user space, callgrind)\n")
    print(f"top {top} functions by inclusive instructions per request (runtime frames left out):")
    shown = 0
    for line in text.splitlines():
        match = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*)$", line)
        if not match or "PROGRAM TOTALS" in match.group(3):
            continue
        where = match.group(3)
        if re.search(r"tokio-|thread_start|start_thread|clone\.S|call_once|future/future\.rs|"
                     r"backtrace|core\.rs|'2", where):
            continue
        function = where.split(":", 1)[-1]
        print(f"  {int(match.group(1).replace(',', '')) / requests:9,.0f}  "
              f"{float(match.group(2)):5.1f}%  {function[:150]}")
        shown += 1
        if shown == top:
            break


def lb_case(folder, seconds, top):
    upstreams = trivial_upstreams()
    try:
        port, admin = free_port(), free_port()
        env = {"APP__SERVER__LISTEN": f"127.0.0.1:{port}",
               "APP__SERVER__ADMIN_LISTEN": f"127.0.0.1:{admin}",
               "APP__SERVER__RUN_DIR": folder, "APP__SERVER__THREADS": "2",
               "APP__UPSTREAMS__ADDRESSES": ",".join(u.url.removeprefix("http://")
                                                     for u in upstreams),
               "APP__UPSTREAMS__KEEPALIVE_POOL_SIZE": "256",
               "APP__ACCESS_LOG__PATH": f"{folder}/lb-access.log"}
        out = f"{folder}/callgrind-lb.out"
        proc = callgrind([str(RELEASE / "lb")], env, out)
        wait_for(port, proc)
        url = f"http://127.0.0.1:{port}{PATH}"
        requests, dump = counted(proc, out, lambda s: wrk_requests(url, s or seconds))
        report("lb, trivial upstreams", requests, dump, top)
    finally:
        for upstream in upstreams:
            upstream.stop()


def api_case(folder, seconds, top):
    uri = f"sqlite://{folder}/orders.db"
    subprocess.run([str(RELEASE / "seed"), "reset", "--count", "1000", "--quiet"], check=True,
                   env={**os.environ, "APP__STORE__URI": uri}, stdout=subprocess.DEVNULL)
    key = create_key(uri)
    headers = ["-H", f"Authorization: Bearer {key}"]
    port = free_port()
    env = {"APP__SERVER__LISTEN": f"127.0.0.1:{port}", "APP__STORE__URI": uri,
           "APP__LOG__LEVEL": "warn", "APP__IMAGES__BLOB_URL": f"{folder}/blobs"}
    out = f"{folder}/callgrind-api.out"
    proc = callgrind([str(RELEASE / "api")], env, out)
    wait_for(port, proc)
    import urllib.request
    listing = urllib.request.Request(f"http://127.0.0.1:{port}/orders?limit=1",
                                     headers={"Authorization": f"Bearer {key}"})
    order = json.load(urllib.request.urlopen(listing, timeout=30))["orders"][0]["_id"]
    url = f"http://127.0.0.1:{port}/orders/{order}"
    requests, dump = counted(proc, out, lambda s: oha_requests(url, s or seconds, headers))
    report("api, GET /orders/{id} on SQLite with a key", requests, dump, top)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["lb", "api"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    build("-p", "lb", "-p", "api", "-p", "seed", "--bins", "--example", "ceiling")
    folder = tempfile.mkdtemp(prefix="bench-instructions-")
    if args.only in (None, "lb"):
        lb_case(folder, args.seconds, args.top)
    if args.only in (None, "api"):
        api_case(folder, args.seconds, args.top)


if __name__ == "__main__":
    main()
