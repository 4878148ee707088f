#!/usr/bin/env python3
"""Benchmark: our pingora `lb` beside nginx, configured alike, in the same run.

Both balance round-robin over the same three upstreams with an upstream keepalive pool of the
same size and 2 workers, and do the same work per request: keep or make an X-Request-Id, send it
upstream and echo it, set X-Forwarded-For and X-Forwarded-Proto, and write the same access-log
line to a file through a 64 KiB buffer. wrk runs on CPU 0; the
proxy and its upstreams share CPU 1. Two upstream sets: three trivial axum processes
(`api/examples/ceiling.rs`) and three real api replicas (GET /orders/{id} on one SQLite file).
Per proxy and concurrency: requests/s, p50/p99, the proxy's CPU microseconds per request (from
/proc, all its processes) and its peak RSS, medians of --repeat runs (min-max), and the ratios
to nginx. Last, the kill test: one upstream is killed during a wrk run; failed requests counted.

Then, per proxy, system calls (strace -c) and allocations (perf uprobes on the allocator: jemalloc's
entry points in lb, glibc malloc and realloc in nginx) per request, each from a short run of its own.

Usage: bench/lb.py [--seconds 5] [--repeat 3] [--connections 64,256] [--upstreams trivial,api]
                   [--no-kill] [--https]
With --https, the trivial set again over HTTPS (TLS 1.3, the same ECDSA P-256 certificate for
both, made by openssl; wrk keeps its connections, so handshakes are few).
Needs `infra/setup bench` (nginx, wrk, taskset; strace and perf for the per-request counts,
skipped where missing; uprobes need root).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common import GENERATOR_CPU, RELEASE, Server, build, descendants, fmt, free_port, summary

KEEPALIVE = 256


def rss_kib(server):
    total = 0
    for pid in descendants(server.proc.pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def trivial_upstreams():
    return [Server([str(RELEASE / "examples" / "ceiling"), f"127.0.0.1:{free_port()}"])
            for _ in range(3)]


def api_upstreams(folder):
    servers = []
    for i in range(3):
        servers.append(Server([str(RELEASE / "api")], env={
            "APP__SERVER__LISTEN": f"127.0.0.1:{free_port()}",
            "APP__SERVER__INSTANCE": f"api-{i + 1}",
            "APP__STORE__URI": f"sqlite://{folder}/orders.db", "APP__LOG__LEVEL": "warn",
            # What is measured is the proxy in front: keys off, so wrk and oha need none (the
            # key check's own cost is in bench/orders.py).
            "APP__AUTH__REQUIRED": "false",
            "RUST_LOG": "warn,api=info"}))
    return servers


def certificate(folder):
    """An ECDSA P-256 certificate for 127.0.0.1, the same file for both proxies."""
    cert, key = Path(folder) / "bench.crt", Path(folder) / "bench.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def our_lb(upstreams, folder, https=False, under=()):
    """lb in front of `upstreams`; `under` prefixes its command (valgrind, say)."""
    port, admin = free_port(), free_port()
    addresses = ",".join(u.url.removeprefix("http://") for u in upstreams)
    env = {
        "APP__SERVER__LISTEN": f"127.0.0.1:{port}", "APP__SERVER__ADMIN_LISTEN": f"127.0.0.1:{admin}",
        "APP__SERVER__RUN_DIR": folder, "APP__SERVER__THREADS": os.environ.get("LB_THREADS", "2"),
        "APP__UPSTREAMS__ADDRESSES": addresses,
        "APP__UPSTREAMS__KEEPALIVE_POOL_SIZE": str(KEEPALIVE),
        "APP__ACCESS_LOG__PATH": f"{folder}/lb-access.log"}
    scheme = "http"
    if https:
        cert, key = certificate(folder)
        port = free_port()
        env.update({"APP__TLS__LISTEN": f"127.0.0.1:{port}", "APP__TLS__CERT_FILE": str(cert),
                    "APP__TLS__KEY_FILE": str(key)})
        scheme = "https"
    server = Server([*under, str(RELEASE / "lb")], env=env, port=port)
    server.url = f"{scheme}://127.0.0.1:{port}"
    return server


def nginx(upstreams, folder, https=False):
    port = free_port()
    listen = f"127.0.0.1:{port}"
    tls = ""
    if https:
        cert, key = certificate(folder)
        listen += " ssl"
        tls = (f"ssl_certificate {cert}; ssl_certificate_key {key}; "
               "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:1m;")
    servers = "\n".join(f"        server {u.url.removeprefix('http://')};" for u in upstreams)
    conf = Path(folder) / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    # The same line lb writes (time, client, method, path, status, upstream, bytes, duration,
    # tries, request id), buffered as production nginx configurations do.
    log_format lb '$time_iso8601 $remote_addr $request_method $uri $status $upstream_addr '
                  '$body_bytes_sent $request_time 1 $req_id';
    access_log {folder}/nginx-access.log lb buffer=64k flush=1s;
    # Keep the client's X-Request-Id or make one; send it upstream and echo it back.
    map $http_x_request_id $req_id {{
        default $http_x_request_id;
        "" $request_id;
    }}
    upstream api {{
{servers}
        keepalive {KEEPALIVE // 2};
    }}
    server {{
        listen {listen};
        {tls}
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-Id $req_id;
            proxy_hide_header X-Request-Id;
            add_header X-Request-Id $req_id always;
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 500ms;
        }}
    }}
}}
""")
    server = Server(["nginx", "-c", str(conf), "-p", folder, "-g", "daemon off;"], port=port)
    server.url = f"{'https' if https else 'http'}://127.0.0.1:{port}"
    return server


def wrk(url, connections, seconds):
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, "wrk", "-t1", f"-c{connections}",
                          f"-d{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout

    def millis(label):
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": requests, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": millis("50%"), "p99_ms": millis("99%"),
            "failed": (sum(int(g) for g in errors.groups()) if errors else 0)
            + (int(non2xx.group(1)) if non2xx else 0)}


def measure(proxy, path, connections, seconds):
    before = proxy.cpu_seconds()
    result = wrk(proxy.url + path, connections, seconds)
    cpu = proxy.cpu_seconds() - before
    result["cpu_us"] = cpu * 1e6 / max(result["requests"], 1)
    result["rss_mib"] = rss_kib(proxy) / 1024
    return result


LIBC = "/lib/x86_64-linux-gnu/libc.so.6"


def with_wrk(url, tool, seconds=3):
    """Runs `tool` (a command list that attaches to the proxy and stops on SIGINT) during a wrk
    run; returns its stderr and the requests wrk made."""
    attached = subprocess.Popen(tool, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    out = wrk(url, 64, seconds)
    attached.send_signal(signal.SIGINT)
    return attached.communicate(timeout=30)[1], out["requests"]


JEMALLOC = ["_rjem_malloc", "_rjem_mallocx", "_rjem_calloc", "_rjem_realloc", "_rjem_rallocx"]


def allocation_probes(binary):
    """uprobes on the functions that allocate: jemalloc's (prefixed `_rjem_`, linked into lb and
    api) when `binary` has them, else glibc's malloc and realloc (nginx). Returns the probe
    event names, or None when perf cannot add them."""
    symbols = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    if all(f" T {name}\n" in symbols for name in JEMALLOC):
        target, names, group = binary, JEMALLOC, "probe_" + Path(binary).name.replace("-", "_")
        # A probe is an offset into the file: one added for an earlier build would miss.
        subprocess.run(["perf", "probe", "-d", f"{group}:*"], capture_output=True)
    else:
        target, names, group = LIBC, ["malloc", "realloc"], "probe_libc"
    events = []
    for name in names:
        event = f"{group}:{name}"
        listed = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
        if event not in listed and subprocess.run(
                ["perf", "probe", "-x", target, "--add", name],
                capture_output=True).returncode not in (0, 254):
            return None
        events.append(event)
    return events


def costs(proxy, url, binary):
    """System calls (strace -c) and allocations (uprobes on the allocator's entry points: jemalloc's
    in lb, glibc's in nginx) per request, each from its own short run at 64 connections."""
    pids = [str(pid) for pid in descendants(proxy.proc.pid)]
    result = {}
    if shutil.which("strace"):
        text, requests = with_wrk(url, ["strace", "-c", "-f", *sum((["-p", p] for p in pids), [])])
        total = re.search(r"^\S+\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$", text, re.M)
        if total:
            result["syscalls"] = int(total.group(1)) / max(requests, 1)
    probes = allocation_probes(binary) if shutil.which("perf") else None
    if probes:
        text, requests = with_wrk(url, ["perf", "stat", "-x,", "-e", ",".join(probes),
                                        "-p", ",".join(pids)])
        counts = [int(line.split(",")[0]) for line in text.splitlines()
                  if line.split(",")[0].isdigit()]
        if counts:
            result["allocations"] = sum(counts) / max(requests, 1)
    return result


def kill_test(start_proxy, path, folder, seconds):
    """wrk through the proxy while one of three api replicas is killed: failed requests."""
    upstreams = api_upstreams(folder)
    proxy = start_proxy(upstreams, folder)
    try:
        time.sleep(1.5)
        runner = subprocess.Popen(["taskset", "-c", GENERATOR_CPU, "wrk", "-t1", "-c64",
                                   f"-d{seconds}s", proxy.url + path],
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(seconds / 3)
        upstreams[1].proc.kill()
        out, _ = runner.communicate(timeout=seconds + 30)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        failed = (sum(int(g) for g in errors.groups()) if errors else 0) + \
            (int(non2xx.group(1)) if non2xx else 0)
        return requests, failed
    finally:
        proxy.stop()
        for upstream in upstreams:
            if upstream.proc.poll() is None:
                upstream.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=lambda s: [int(c) for c in s.split(",")],
                        default=[64, 256])
    parser.add_argument("--upstreams", default="trivial,api",
                        help="upstream sets to measure: trivial, api or both")
    parser.add_argument("--no-kill", action="store_true", help="skip the kill test")
    parser.add_argument("--https", action="store_true",
                        help="also HTTPS to the proxies (same ECDSA P-256 certificate), trivial "
                             "upstreams, keep-alive")
    args = parser.parse_args()
    sets = args.upstreams.split(",")
    build("-p", "lb", "-p", "api", "-p", "seed", "--bins", "--example", "ceiling")
    folder = tempfile.mkdtemp(prefix="bench-lb-")
    subprocess.run([str(RELEASE / "seed"), "reset", "--count", "1000", "--quiet"], check=True,
                   env={**os.environ, "APP__STORE__URI": f"sqlite://{folder}/orders.db"},
                   stdout=subprocess.DEVNULL)
    results, per_request = {}, {}
    for target, start_upstreams in (("trivial", trivial_upstreams),
                                    ("api", lambda: api_upstreams(folder))):
        if target not in sets:
            continue
        upstreams = start_upstreams()
        path = "/orders/677485805345454400000000"
        try:
            for name, start in (("lb", our_lb), ("nginx", nginx)):
                proxy = start(upstreams, folder)
                try:
                    time.sleep(1)
                    for connections in args.connections:
                        for _ in range(args.repeat):
                            results.setdefault((target, connections, name), []).append(
                                measure(proxy, path, connections, args.seconds))
                    if target == "trivial":
                        binary = str(RELEASE / "lb") if name == "lb" else shutil.which("nginx")
                        per_request[name] = costs(proxy, proxy.url + path, binary)
                finally:
                    proxy.stop()
        finally:
            for upstream in upstreams:
                upstream.stop()
    if args.https:
        upstreams = trivial_upstreams()
        path = "/orders/677485805345454400000000"
        try:
            for name, start in (("lb", our_lb), ("nginx", nginx)):
                proxy = start(upstreams, folder, https=True)
                try:
                    time.sleep(1)
                    for connections in args.connections:
                        for _ in range(args.repeat):
                            results.setdefault(("trivial-https", connections, name), []).append(
                                measure(proxy, path, connections, args.seconds))
                finally:
                    proxy.stop()
        finally:
            for upstream in upstreams:
                upstream.stop()
        sets.append("trivial-https")
    kills = {} if args.no_kill else {
        name: kill_test(start, "/orders/677485805345454400000000", folder, 6)
        for name, start in (("lb", our_lb), ("nginx", nginx))}

    print(f"\n## bench/lb: wrk on CPU {GENERATOR_CPU}, proxy and 3 upstreams on the other CPU, "
          f"{args.seconds} s per run, median of {args.repeat} (min-max)\n")
    print("| upstreams | conns | proxy | requests/s | p50 ms | p99 ms | proxy CPU µs/request | "
          "proxy RSS MiB | failed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (target, connections, name), runs in results.items():
        print(f"| {target} | {connections} | {name} | {fmt(runs, 'rps')} | {fmt(runs, 'p50_ms', 2)} | "
              f"{fmt(runs, 'p99_ms', 2)} | {fmt(runs, 'cpu_us', 1)} | {fmt(runs, 'rss_mib', 1)} | "
              f"{sum(r['failed'] for r in runs)} |")
    print("\nratios lb / nginx (CPU per request, p99; lower is better):")
    for target in sets:
        for connections in args.connections:
            ours, theirs = results[(target, connections, "lb")], results[(target, connections, "nginx")]
            print(f"  {target}, {connections} connections: CPU {summary(ours, 'cpu_us')[0] / summary(theirs, 'cpu_us')[0]:.2f}x, "
                  f"p99 {summary(ours, 'p99_ms')[0] / summary(theirs, 'p99_ms')[0]:.2f}x, "
                  f"requests/s {summary(ours, 'rps')[0] / summary(theirs, 'rps')[0]:.2f}x")
    print("\nper request, trivial upstreams, 64 connections (separate runs under strace / perf "
          "uprobes on the allocator: jemalloc in lb, glibc malloc+realloc in nginx):")
    for name, found in per_request.items():
        print(f"  {name}: " + ", ".join(f"{v:.1f} {k}" for k, v in found.items()))
    if kills:
        print("\nkill test (64 connections, 6 s, one of three api replicas killed after 2 s):")
    for name, (requests, failed) in kills.items():
        print(f"  {name}: {failed} failed of {requests:,} requests")


if __name__ == "__main__":
    main()
