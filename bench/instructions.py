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
import re
import subprocess
import tempfile
from pathlib import Path

from common import bearer, build, create_key, oha
from lb import our_lb, trivial_upstreams, wrk
from orders import api, first_id, seed

PATH = "/orders/677485805345454400000000"


def counted(server, out, load, seconds):
    """Warms `server` (running under callgrind) up, zeroes its counters, runs `load(seconds)`
    (the requests it made), dumps the counters and stops it: the requests and the dump file."""
    try:
        load(3)
        subprocess.run(["callgrind_control", "-z", str(server.proc.pid)], check=True,
                       capture_output=True)
        requests = load(seconds)
        subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], check=True,
                       capture_output=True)
    finally:
        # Killed: the counters are dumped already, and a graceful stop only adds a wait.
        server.proc.kill()
        server.stop()
    return requests, sorted(Path(out).parent.glob(Path(out).name + ".*"))[-1]


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
        out = f"{folder}/callgrind-lb.out"
        proxy = our_lb(upstreams, folder,
                       under=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        url = proxy.url + PATH
        requests, dump = counted(proxy, out, lambda s: wrk(url, 16, s)["requests"], seconds)
        report("lb, trivial upstreams", requests, dump, top)
    finally:
        for upstream in upstreams:
            upstream.stop()


def api_case(folder, seconds, top):
    db = Path(folder) / "orders.db"
    seed(db, 1000)
    key = create_key(f"sqlite://{db}")
    out = f"{folder}/callgrind-api.out"
    server = api(db, "instructions",
                 under=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    url = f"{server.url}/orders/{first_id(server, key)}"

    def load(s):
        return sum(oha(url, ["-z", f"{s}s", "-c", "16", *bearer(key)])
                   ["statusCodeDistribution"].values())

    requests, dump = counted(server, out, load, seconds)
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
