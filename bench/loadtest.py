"""The reference team's load test, as one reproducible command, against the running stack.

Start the stack first (`infra/run`, in another terminal), then:

    python3 bench/loadtest.py            # about 6 minutes; writes docs/load-test.md + .png

Per spawn rate (25, 50, 100 users/s): the orders are reset to the seed data set (`seed reset`),
Locust runs the reference scenario (locustfile.py ReferenceUser: 1000 users, each listing and
placing orders with 1-3 s waits) headless for 60 s through `lb`, and its CSV and HTML are kept in
target/loadtest/. The report gives, per run: users reached, time at full load, RPS (mean and
peak), p50/p95/p99/max, failures, status codes counted by `lb`, and the CPU of Locust and of the
stack's processes; a run is marked invalid when Locust used more than 70% of a core or reached
less than 95% of the rate its users intend (users / 2 s mean wait), since then it measures
Locust, not us. A chart shows users, RPS and p95 over time.

Then it finds the highest fixed rate `lb` serves with 0% failures and p99 under --p99-bound-ms
(oha -q, stepping up 25% from --start-rate), for GET /orders/{id} through the stack, and the same
through a second lb in front of three trivial upstreams (api/examples/ceiling.rs): the proxy's
own ceiling on this machine.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RELEASE, ROOT, TARGET, build, free_port, process_cpu_seconds  # noqa: E402

VENV = CACHE / "venv"
OUT = TARGET / "loadtest"
MEAN_WAIT_S = 2.0  # ReferenceUser waits between(1, 3)


def stack_pids():
    """The pids of the running stack's lb, api and worker processes (release binaries), and of
    supervisord, which runs them and forwards their log lines."""
    pids = {}
    for exe in Path("/proc").glob("[0-9]*/exe"):
        try:
            target = os.readlink(exe)
            command = (exe.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/supervisord") for part in command):
            pids.setdefault("supervisord", []).append(int(exe.parent.name))
            continue
        # A binary rebuilt while it runs shows as "… (deleted)".
        target = Path(target.removesuffix(" (deleted)"))
        if target.name in ("lb", "api", "worker") and target.parent == RELEASE.resolve():
            name = target.name
            pids.setdefault(name, []).append(int(exe.parent.name))
    return pids


def stack_cpu(pids):
    """CPU seconds so far, per group (lb, api, worker, supervisord)."""
    totals = {}
    for name, group in pids.items():
        for pid in group:
            try:
                totals[name] = totals.get(name, 0.0) + process_cpu_seconds(pid)
            except OSError:
                pass
    return totals


def cpu_shares(before, after, wall):
    return {name: (after.get(name, 0.0) - before.get(name, 0.0)) / wall for name in after}


def fmt_shares(shares):
    order = ["lb", "api", "worker", "supervisord"]
    total = sum(shares.values())
    parts = " / ".join(f"{shares.get(name, 0.0):.0%}" for name in order)
    return f"{total:.0%} ({parts})"


def lb_statuses(admin):
    """Requests answered by lb so far, by status."""
    text = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
    counts = {}
    for match in re.finditer(r'^lb_requests_total\{[^}]*status="(\d+)"[^}]*\} (\d+)', text, re.M):
        counts[match.group(1)] = counts.get(match.group(1), 0) + int(match.group(2))
    return counts


def seed_reset(args):
    env = dict(os.environ)
    env.setdefault("APP__STORE__URI", args.store_uri)
    subprocess.run([str(RELEASE / "seed"), "--config", str(ROOT / "infra/local/api.toml"),
                    "reset", "--count", str(args.seed_count), "--quiet"],
                   cwd=ROOT, env=env, check=True)


def run_locust(args, rate, pids):
    prefix = OUT / f"rate{rate}"
    before_stack, before_codes = stack_cpu(pids), lb_statuses(args.admin)
    started = time.time()
    process = subprocess.Popen(
        [str(VENV / "bin" / "locust"), "-f", str(ROOT / "locustfile.py"), "--headless",
         "--only-summary", "-u", str(args.users), "-r", str(rate), "-t", f"{args.seconds}s",
         "-H", args.host, "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}.html",
         "--stop-timeout", "5", "ReferenceUser"],
        cwd=ROOT, env={**os.environ, "ORDERS_API_KEY": args.api_key},
        stdout=subprocess.DEVNULL, stderr=open(f"{prefix}.log", "w"))
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.time() - started
    generator_cpu = usage.ru_utime + usage.ru_stime
    service_cpu = cpu_shares(before_stack, stack_cpu(pids), wall)
    after_codes = lb_statuses(args.admin)
    codes = {k: after_codes.get(k, 0) - before_codes.get(k, 0) for k in after_codes}
    codes = {k: v for k, v in sorted(codes.items()) if v}
    with open(f"{prefix}_stats.csv") as f:
        total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    with open(f"{prefix}_stats_history.csv") as f:
        history = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    t0 = int(history[0]["Timestamp"]) if history else 0
    series = [(int(r["Timestamp"]) - t0, int(r["User Count"]), float(r["Requests/s"]),
               float(r["95%"]) if r["95%"] not in ("N/A", "") else 0.0) for r in history]
    full = [s for s in series if s[1] >= args.users]
    # Locust's RPS is a 10 s moving window: judge the rate once the window holds full load only.
    settled = [s for s in full if s[0] >= full[0][0] + 10] if full else []
    full_rps = statistics.mean(s[2] for s in (settled or full)) if full else 0.0
    intended = args.users / MEAN_WAIT_S
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    generator_share = generator_cpu / wall
    problems = []
    if generator_share > 0.70:
        problems.append(f"Locust used {generator_share:.0%} of a core")
    if full_rps < 0.95 * intended:
        problems.append(f"{full_rps:.0f} RPS at full load < 95% of the intended {intended:.0f}")
    return {
        "rate": rate, "exit": status >> 8, "series": series,
        "users": max((s[1] for s in series), default=0),
        "full_s": (full[-1][0] - full[0][0]) if len(full) > 1 else 0,
        "rps_mean": requests / args.seconds, "rps_peak": max((s[2] for s in series), default=0),
        "rps_full": full_rps, "p50": float(total["50%"]), "p95": float(total["95%"]),
        "p99": float(total["99%"]), "max": float(total["Max Response Time"]),
        "requests": requests, "failures": failures, "codes": codes,
        "generator_cpu": generator_share, "service_cpu": service_cpu,
        "valid": not problems, "problems": problems,
    }


def chart(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for run in runs:
        t = [s[0] for s in run["series"]]
        label = f"spawn rate {run['rate']}/s"
        axes[0].plot(t, [s[1] for s in run["series"]], label=label)
        axes[1].plot(t, [s[2] for s in run["series"]], label=label)
        axes[2].plot(t, [s[3] for s in run["series"]], label=label)
    for ax, title in zip(axes, ["users", "requests/s", "p95 response time (ms)"]):
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[2].set_xlabel("seconds since start")
    figure.suptitle("Locust ReferenceUser through lb (1000 users)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def oha_step(url, rate, seconds, key):
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-q", str(rate), "-z",
                          f"{seconds}s", "-c", str(min(512, max(16, rate // 50))),
                          "-H", f"Authorization: Bearer {key}", url],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    codes = result["statusCodeDistribution"]
    errors = {k: v for k, v in result["errorDistribution"].items() if "deadline" not in k}
    ok = codes.get("200", 0)
    return {"rate": rate, "achieved": ok / seconds,
            "failures": sum(codes.values()) - ok + sum(errors.values()),
            "p99_ms": (result["latencyPercentiles"]["p99"] or 0) * 1000}


def max_rps(url, args, pids=None):
    """Steps the fixed rate up by 25% until a failure, p99 over the bound, or the rate not
    reached; returns the last rate that passed, and every step (with the stack's CPU shares
    when `pids` are given)."""
    steps, best, rate = [], None, args.start_rate
    while rate <= args.max_rate:
        before = stack_cpu(pids) if pids else {}
        step = oha_step(url, rate, args.step_seconds, args.api_key)
        if pids:
            step["cpu"] = cpu_shares(before, stack_cpu(pids), args.step_seconds)
        steps.append(step)
        passed = (step["failures"] == 0 and step["p99_ms"] <= args.p99_bound_ms
                  and step["achieved"] >= 0.95 * rate)
        if not passed:
            break
        best = rate
        rate = int(rate * 1.25)
    return best, steps


def ceiling_stack(args):
    """A second lb, with the shipped settings, in front of three trivial upstreams."""
    procs, upstreams = [], []
    for _ in range(3):
        port = free_port()
        procs.append(subprocess.Popen([str(RELEASE / "examples" / "ceiling"), f"127.0.0.1:{port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        upstreams.append(f"127.0.0.1:{port}")
    lb_port, admin_port = free_port(), free_port()
    run_dir = tempfile.mkdtemp()
    env = dict(os.environ, APP__SERVER__LISTEN=f"127.0.0.1:{lb_port}",
               APP__SERVER__ADMIN_LISTEN=f"127.0.0.1:{admin_port}",
               APP__SERVER__RUN_DIR=run_dir, APP__SERVER__INSTANCE="lb-ceiling",
               APP__UPSTREAMS__ADDRESSES=",".join(upstreams))
    procs.append(subprocess.Popen([str(RELEASE / "lb"), "--config", str(ROOT / "infra/local/lb.toml")],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{lb_port}/orders/x", timeout=1)
            break
        except Exception:
            time.sleep(0.2)
    return procs, f"http://127.0.0.1:{lb_port}"


def report(args, runs, stack_max, ceiling_max, path):
    lines = [
        "# Load test results",
        "",
        f"Generated by `python3 bench/loadtest.py` on {datetime.date.today()} against `infra/run`'s "
        f"stack (lb, {len(args.pids.get('api', []))} api replicas, "
        f"{len(args.pids.get('worker', []))} workers, SQLite) on this machine: "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Linux "
        f"{platform.release()}. Locust runs on the same machine, unpinned.",
        "",
        f"Scenario: locustfile.py `ReferenceUser` (GET /orders and POST /orders, 1-3 s waits), "
        f"{args.users} users, {args.seconds} s per run, orders reset to {args.seed_count} seeded "
        "orders before each run.",
        "",
        "| spawn rate | users reached | s at full load | RPS mean / peak / at full load | "
        "p50 / p95 / p99 / max ms | requests | failures | status codes (lb) | Locust CPU | "
        "stack CPU | valid |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        valid = "yes" if r["valid"] else "no: " + "; ".join(r["problems"])
        lines.append(
            f"| {r['rate']}/s | {r['users']} | {r['full_s']} | {r['rps_mean']:.0f} / "
            f"{r['rps_peak']:.0f} / {r['rps_full']:.0f} | {r['p50']:.0f} / {r['p95']:.0f} / "
            f"{r['p99']:.0f} / {r['max']:.0f} | {r['requests']:,} | {r['failures']} | "
            f"{', '.join(f'{k}: {v:,}' for k, v in r['codes'].items())} | "
            f"{r['generator_cpu']:.0%} | {fmt_shares(r['service_cpu'])} | {valid} |")
    lines += ["", "![users, RPS and p95 over time](load-test.png)", "",
              "CPU is the share of one core over the run (Locust: its process; stack: all its "
              "processes, then lb / api replicas / workers / supervisord, which forwards the "
              "processes' own log lines; requests go to lb's access log file). \"At full load\" "
              "RPS leaves out the first 10 s at full load (Locust's moving window). Locust's "
              "CSV and HTML reports are in `target/loadtest/`.", ""]
    if stack_max is not None:
        best, steps = stack_max
        cbest, csteps = ceiling_max
        lines += [
            "## Highest rate with 0% failures",
            "",
            f"Fixed-rate GET /orders/{{id}} with oha (`-q`), {args.step_seconds} s per step, up "
            f"25% per step from {args.start_rate}/s, until a failure, p99 over "
            f"{args.p99_bound_ms} ms, or the rate not reached.",
            "",
            "| target | highest passing rate | steps (rate: achieved, p99 ms, failures) |",
            "|---|---|---|",
            f"| lb → 3 api replicas (the stack) | {best or 0:,}/s | "
            + "; ".join(f"{s['rate']}: {s['achieved']:.0f}, {s['p99_ms']:.1f}, {s['failures']}"
                        for s in steps) + " |",
            f"| lb → 3 trivial upstreams (the proxy's ceiling) | {cbest or 0:,}/s | "
            + "; ".join(f"{s['rate']}: {s['achieved']:.0f}, {s['p99_ms']:.1f}, {s['failures']}"
                        for s in csteps) + " |",
            "",
            f"Stack / ceiling: **{(best or 0) / max(cbest or 1, 1):.2f}x** (goal ≥ 0.8x).",
            "",
            "The stack's CPU at each step, share of one core, all (lb / api replicas / workers / "
            "supervisord): " + "; ".join(f"{s['rate']}: {fmt_shares(s['cpu'])}" for s in steps
                                     if "cpu" in s) + ". The trivial upstreams' lb writes its "
            "access log to /dev/null; oha runs on the same two cores.",
            "",
        ]
    path.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="http://127.0.0.1:8000", help="the stack's lb")
    parser.add_argument("--admin", default="http://127.0.0.1:9000", help="lb's admin address")
    parser.add_argument("--store-uri", default="sqlite://data/orders.db",
                        help="the stack's store, for the reset (APP__STORE__URI wins)")
    parser.add_argument("--api-key", default=None,
                        help="the stack's API key (default: ORDERS_API_KEY, else the key "
                             "infra/run keeps in STACK_DATA_DIR or data/, api-key)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rates", default="25,50,100", help="spawn rates; empty: no Locust run")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--seed-count", type=int, default=10_000)
    parser.add_argument("--start-rate", type=int, default=1000)
    parser.add_argument("--max-rate", type=int, default=100_000)
    parser.add_argument("--step-seconds", type=int, default=5)
    parser.add_argument("--p99-bound-ms", type=float, default=100.0)
    parser.add_argument("--skip-max-rps", action="store_true")
    parser.add_argument("--report", default=str(ROOT / "docs" / "load-test.md"))
    args = parser.parse_args()
    if not args.api_key:
        key_file = Path(os.environ.get("STACK_DATA_DIR", ROOT / "data")) / "api-key"
        args.api_key = os.environ.get("ORDERS_API_KEY") or (
            key_file.read_text().strip() if key_file.exists() else "")
        if not args.api_key:
            raise SystemExit(f"no API key: give --api-key, set ORDERS_API_KEY, or start the "
                             f"stack with infra/run (it writes {key_file})")
    if Path(sys.prefix).resolve() != VENV.resolve():
        # Locust's CSVs are read here and the chart drawn with matplotlib: run in the venv.
        subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
        os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
    # The same set infra/run builds (so the stack's binaries are not rebuilt), then the example
    # on its own (its dev-dependencies unify other features).
    build("-p", "api", "-p", "lb", "-p", "seed")
    build("-p", "api", "--example", "ceiling")
    args.pids = stack_pids()
    if not args.pids.get("lb") or not args.pids.get("api"):
        raise SystemExit("start the stack first: infra/run (in another terminal)")
    OUT.mkdir(parents=True, exist_ok=True)
    runs = []
    for rate in [int(r) for r in args.rates.split(",") if r]:
        seed_reset(args)
        print(f"== spawn rate {rate}/s: {args.users} users, {args.seconds} s", flush=True)
        run = run_locust(args, rate, args.pids)
        print(f"   {run['requests']:,} requests, {run['failures']} failures, "
              f"p95 {run['p95']:.0f} ms, valid: {run['valid']} {run['problems']}", flush=True)
        runs.append(run)
    report_path = Path(args.report)
    chart(runs, report_path.with_suffix(".png"))
    stack_max = ceiling_max = None
    if not args.skip_max_rps:
        seed_reset(args)
        first = urllib.request.Request(f"{args.host}/orders?limit=1",
                                       headers={"Authorization": f"Bearer {args.api_key}"})
        order = json.load(urllib.request.urlopen(first))["orders"][0]["_id"]
        print("== highest 0%-failure rate through the stack", flush=True)
        stack_max = max_rps(f"{args.host}/orders/{order}", args, args.pids)
        print(f"   {stack_max[0]}/s", flush=True)
        procs, ceiling = ceiling_stack(args)
        try:
            print("== the same through lb in front of trivial upstreams", flush=True)
            ceiling_max = max_rps(f"{ceiling}/orders/{order}", args)
            print(f"   {ceiling_max[0]}/s", flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    report(args, runs, stack_max, ceiling_max, report_path)
    print(f"== report: {report_path} (chart {report_path.with_suffix('.png')})")


if __name__ == "__main__":
    main()
