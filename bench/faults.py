"""The fault campaign: the stack `infra/run` starts (supervisord, lb, 3 api replicas, 3 workers),
on loopback ports of its own and a scratch data folder, under faults, with what a user would
count afterwards. About 12 minutes; writes its tables into docs/reliability.md.

    python3 bench/faults.py                      # every scenario
    python3 bench/faults.py --only jobs,corpus   # some: orders, jobs, redis, mongodb, corpus

- orders:  Locust, 1000 users of the reference scenario (each POST with its own Idempotency-Key)
           through lb for 60 s while one api replica is SIGKILLed every 10 s (supervisord starts
           it again). Then every acknowledged order is read back and duplicates are counted.
- jobs:    1,000 uploads while a worker is SIGKILLed every 5 s; every image must end `done`.
- redis:   the stack on a Redis queue (redis-server, appendonly): Redis stopped for 10 s during
           uploads, then Redis restarted empty with 50 jobs queued (workers paused).
- mongodb: the stack on the MongoDB-compatible test server, which is stopped for 10 s while
           clients place orders (retrying a 503 with the same key).
- corpus:  hostile files made here (truncated, pixel bombs within the 50 MP limit, a progressive
           JPEG with 3,000 scans, 16-bit, zero-length, a JPEG/HTML polyglot): each answer, each
           outcome, and the workers' peak RSS.

Every figure comes from this run; nothing is asserted. Traffic stays on 127.0.0.1.
"""

import argparse
import concurrent.futures
import csv
import datetime
import io
import json
import os
import platform
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RELEASE, ROOT, TOOLS, build, free_port  # noqa: E402

VENV = CACHE / "venv"
OUT = ROOT / "target" / "faults"
SCENARIOS = ["orders", "jobs", "redis", "mongodb", "corpus"]


# ---------------------------------------------------------------- the stack and its processes

class Stack:
    """infra/run with its own ports and data folder, on the release binaries already built."""

    def __init__(self, name, env=None):
        self.dir = Path(tempfile.mkdtemp(prefix=f"faults-{name}-"))
        self.port, self.admin = free_port(), free_port()
        base = free_port()
        while not all(port_free(base + i) for i in range(3)):
            base = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "STACK_BIN_DIR": str(RELEASE), "STACK_DATA_DIR": str(self.dir),
                    "LB_LISTEN": f"127.0.0.1:{self.port}",
                    "LB_ADMIN_LISTEN": f"127.0.0.1:{self.admin}",
                    "API_BASE_PORT": str(base), **(env or {})}
        self.log = open(OUT / f"{name}-stack.log", "w")
        self.proc = subprocess.Popen([str(ROOT / "infra" / "run")], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait_ready()

    def wait_ready(self, seconds=60):
        import requests
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                # The stack's development key, for every client of this run (locust inherits
                # it through the environment).
                key_file = self.dir / "api-key"
                if key_file.exists():
                    os.environ["ORDERS_API_KEY"] = key_file.read_text().strip()
                if session().get(f"{self.url}/orders?limit=1", timeout=2).status_code == 200 and \
                        len(self.pids("api-")) == 3 and len(self.pids("worker-")) == 3:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise SystemExit(f"the stack did not start; see {self.log.name}")

    def pids(self, prefix):
        """Pids of this stack's processes whose instance name starts with `prefix`."""
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                variables = environ.read_bytes().split(b"\0")
            except OSError:
                continue
            if f"STACK_DATA_DIR={self.dir}".encode() not in variables:
                continue
            for variable in variables:
                if variable.startswith(b"APP__SERVER__INSTANCE=" + prefix.encode()):
                    try:
                        exe = os.readlink(environ.parent / "exe")
                    except OSError:
                        break
                    if Path(exe.removesuffix(" (deleted)")).name in ("api", "worker"):
                        found.append(int(environ.parent.name))
        return found

    def kill(self, instance):
        pids = self.pids(instance)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return bool(pids)

    def signal_all(self, prefix, sig):
        for pid in self.pids(prefix):
            os.kill(pid, sig)

    def peak_rss_mib(self, prefix):
        peaks = []
        for pid in self.pids(prefix):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return peaks

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def port_free(port):
    import socket
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Killer(threading.Thread):
    """SIGKILLs the named instances in turn, one every `every` seconds, until stopped."""

    def __init__(self, stack, names, every):
        super().__init__(daemon=True)
        self.stack, self.names, self.every = stack, names, every
        self.kills, self.halt = 0, threading.Event()

    def run(self):
        turn = 0
        while not self.halt.wait(self.every):
            if self.stack.kill(self.names[turn % len(self.names)]):
                self.kills += 1
            turn += 1

    def stop(self):
        self.halt.set()
        self.join()


class Server:
    """A data server (redis-server, the MongoDB-compatible test server) that can be stopped and
    started again on the same port and data."""

    def __init__(self, name, command):
        self.name, self.command = name, command
        self.log = open(OUT / f"{name}.log", "a")
        self.start()

    def start(self):
        self.proc = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not port_free(port):
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------- clients

def session():
    """A requests session that sends the running stack's key (ORDERS_API_KEY)."""
    import requests
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {os.environ.get('ORDERS_API_KEY', '')}"
    return s


def is_json_message(response):
    try:
        return bool(response.json().get("message"))
    except ValueError:
        return False


def read_back(url, acked):
    """Every acknowledged order, read back through lb: (missing, wrong)."""
    local = threading.local()

    def check(item):
        if not hasattr(local, "s"):
            local.s = session()
        for _ in range(3):
            try:
                r = local.s.get(f"{url}/orders/{item['id']}", timeout=10)
                if r.status_code == 200:
                    return "ok" if r.json()["order"]["customer_name"] == item["key"] else "wrong"
                if r.status_code == 404:
                    return "missing"
            except Exception:
                pass
            time.sleep(0.5)
        return "unreadable"

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(check, acked))
    return {k: results.count(k) for k in ("ok", "missing", "wrong", "unreadable")}


def all_orders(url):
    """customer_name of every order in the store, paging through lb."""
    s, names, after = session(), [], None
    while True:
        r = s.get(f"{url}/orders", params={"limit": 1000, **({"after": after} if after else {})},
                  timeout=30)
        r.raise_for_status()
        page = r.json()
        names += [o["customer_name"] for o in page["orders"]]
        after = page.get("next")
        if not after:
            return names


def duplicates(names, keys):
    counts = Counter(names)
    return {"duplicates": sum(c - 1 for c in counts.values() if c > 1),
            "unacknowledged": sum(1 for name in counts if name not in keys)}


def upload(s, url, data, name="picture"):
    r = s.post(f"{url}/images", files={"file": (name, data, "application/octet-stream")},
               timeout=30)
    return r


def refusal(response):
    body = response.json()
    details = "; ".join(f"{k}: {v}" for k, v in (body.get("errors") or {}).items())
    return body.get("message", "") + (f" ({details})" if details else "")


def wait_terminal(url, ids, seconds):
    """Polls the images until each is done or failed, or the time runs out: their last JSON."""
    s, last, pending = session(), {}, set(ids)
    deadline = time.time() + seconds
    while pending and time.time() < deadline:
        for image in list(pending):
            try:
                r = s.get(f"{url}/images/{image}", timeout=10)
            except Exception:
                continue
            if r.status_code == 200:
                last[image] = r.json()
                if last[image]["status"] in ("done", "failed"):
                    pending.discard(image)
        if pending:
            time.sleep(1)
    return last


def statuses(images):
    return Counter(image["status"] for image in images.values())


# ---------------------------------------------------------------- pictures

def photo(width=800, height=600, seed=0, **save):
    from PIL import Image
    rng = random.Random(seed)
    image = Image.effect_noise((width, height), 40 + seed % 40).convert("RGB")
    image = Image.merge("RGB", [band.point(lambda v, k=rng.randint(0, 80): min(255, v + k))
                                for band in image.split()])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85, **save)
    return out.getvalue()


def png_photo(width, height, seed):
    """A smooth PNG (no shrink-on-load for PNG: every pixel is decoded, tens of ms per job)."""
    from PIL import Image
    bands = [Image.radial_gradient("L").resize((width, height)),
             Image.linear_gradient("L").resize((width, height)).rotate(seed * 17 % 360),
             Image.effect_noise((width, height), 8 + seed % 16)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "PNG")
    return out.getvalue()


def png(width, height, depth, colour):
    """A PNG of zero pixels written by hand (Pillow writes no 16-bit RGBA)."""
    channels = {0: 1, 2: 3, 6: 4}[colour]
    row = b"\0" + bytes(width * channels * depth // 8)
    compressor, body = zlib.compressobj(9), []
    for _ in range(height):
        body.append(compressor.compress(row))
    body.append(compressor.flush())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))


def corpus():
    from PIL import Image
    base = photo(2000, 1500, seed=7)
    # Its smallest scan repeated 3,000 times: each copy is one more pass over the whole image.
    progressive = photo(320, 240, seed=3, progressive=True)
    end = len(progressive) - 2
    starts = [i for i in range(end) if progressive[i:i + 2] == b"\xff\xda"] + [end]
    scan = min((progressive[a:b] for a, b in zip(starts, starts[1:])), key=len)
    many_scans = progressive[:end] + scan * 3000 + progressive[end:]
    webp = io.BytesIO()
    Image.new("RGBA", (16383, 3051)).save(webp, "WEBP", lossless=True, method=0)
    sixteen = png(2000, 2000, 16, 2)
    polyglot = base[:2] + b"\xff\xfe" + struct.pack(">H", 2 + 60) + \
        b"<html><script>alert(document.cookie)</script></html>".ljust(60) + base[2:]
    # A whole file but for its pixel data: the header alone must be enough to refuse it.
    whole = png(1, 1, 8, 2)
    header_only = whole[:16] + struct.pack(">II", 60000, 60000) + whole[24:29]
    header_only = header_only[:29] + struct.pack(">I", zlib.crc32(header_only[12:29])) + whole[33:]
    return [
        ("zero-length file", b""),
        ("HTML named .jpg", b"<html><body>not a picture</body></html>"),
        ("PNG header declaring 60000x60000", header_only),
        ("truncated JPEG (first half of 2000x1500)", base[:len(base) // 2]),
        ("truncated PNG (IDAT cut)", png(1000, 1000, 8, 2)[:-200]),
        ("PNG bomb: 7000x7000 RGBA 8-bit zeros", png(7000, 7000, 8, 6)),
        ("PNG bomb: 7000x7000 RGBA 16-bit zeros", png(7000, 7000, 16, 6)),
        ("WebP bomb: 16383x3051 lossless RGBA zeros", webp.getvalue()),
        ("progressive JPEG with 3,000 scans", many_scans),
        ("16-bit RGB PNG 2000x2000", sixteen),
        ("JPEG/HTML polyglot (script in a COM segment)", polyglot),
    ]


# ---------------------------------------------------------------- scenarios

def scenario_orders(args):
    stack = Stack("orders")
    try:
        acked_path = OUT / "orders-acked.jsonl"
        prefix = OUT / "orders"
        killer = Killer(stack, ["api-1", "api-2", "api-3"], 10)
        killer.start()
        subprocess.run(
            [str(VENV / "bin" / "locust"), "-f", str(ROOT / "bench" / "faults_locustfile.py"),
             "--headless", "--only-summary", "-u", str(args.users), "-r", "100", "-t",
             f"{args.seconds}s", "-H", stack.url, "--csv", str(prefix), "--stop-timeout", "10"],
            cwd=ROOT, env={**os.environ, "FAULTS_ACKED": str(acked_path)},
            stdout=subprocess.DEVNULL, stderr=open(f"{prefix}.log", "w"), timeout=args.seconds + 120)
        killer.stop()
        stack.wait_ready()
        with open(f"{prefix}_stats.csv") as f:
            total = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
        with open(f"{prefix}_failures.csv") as f:
            failures = [f"{r['Method']} {r['Name']}: {r['Error'][:80]} ×{r['Occurrences']}"
                        for r in csv.DictReader(f)]
        acked = [json.loads(line) for line in acked_path.read_text().splitlines()]
        back = read_back(stack.url, acked)
        extra = duplicates(all_orders(stack.url), {a["key"] for a in acked})
        return {
            "command": "python3 bench/faults.py --only orders",
            "users": args.users, "seconds": args.seconds,
            "fault": f"one api replica SIGKILLed every 10 s ({killer.kills} kills)",
            "requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "failure_kinds": failures, "acknowledged": len(acked), "read_back": back, **extra,
        }
    finally:
        stack.stop()


def scenario_jobs(args):
    stack = Stack("jobs")
    try:
        pictures = [png_photo(1600, 1200, seed=i) for i in range(20)]
        killer = Killer(stack, ["worker-1", "worker-2", "worker-3"], 5)
        killer.start()
        started = time.time()
        local = threading.local()

        def send(i):
            if not hasattr(local, "s"):
                local.s = session()
            r = upload(local.s, stack.url, pictures[i % len(pictures)], f"photo-{i}.jpg")
            return r.status_code, (r.json().get("job_id") if r.status_code == 202 else None)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(args.jobs)))
        uploaded = time.time() - started
        ids = [image for status, image in answers if image]
        # Keep killing while the workers drain the queue, then give them time without faults.
        images = wait_terminal(stack.url, ids, 60)
        killer.stop()
        images.update(wait_terminal(stack.url, ids, 240))
        counts = statuses(images)
        attempts = count_values(image["attempts"] for image in images.values())
        return {
            "command": "python3 bench/faults.py --only jobs",
            "fault": f"one worker SIGKILLed every 5 s ({killer.kills} kills)",
            "uploads": len(answers), "accepted": len(ids),
            "upload_statuses": count_values(s for s, _ in answers),
            "done": counts.get("done", 0), "failed": counts.get("failed", 0),
            "stuck": len(ids) - counts.get("done", 0) - counts.get("failed", 0),
            "failed_reasons": sorted({i["error"] for i in images.values() if i["error"]}),
            "attempts": attempts,
            "seconds": round(time.time() - started), "upload_seconds": round(uploaded),
        }
    finally:
        stack.stop()


def count_values(values):
    return dict(sorted(Counter(values).items()))


def phased_load(url, phases, send, threads=4):
    """Runs `send(session)` (-> status, JSON message?, seconds to the answer) in `threads`
    loops; each answer is filed under the phase that was current when it was sent."""
    current, results, stop = [phases[0]], {p: [] for p in phases}, threading.Event()

    def loop():
        s = session()
        while not stop.is_set():
            phase, started = current[0], time.time()
            try:
                status, message, seconds = send(s)
            except Exception as error:
                status, message, seconds = type(error).__name__, False, time.time() - started
            results[phase].append((status, message, seconds))
            time.sleep(0.05)

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return current, results, stop, workers


def summarise(answers):
    if not answers:
        return "none"
    counts = count_values(str(s) for s, _, _ in answers)
    json_errors = sum(1 for s, m, _ in answers if isinstance(s, int) and s >= 400 and m)
    errors = sum(1 for s, _, _ in answers if not (isinstance(s, int) and s < 400))
    slowest = max(t for _, _, t in answers)
    text = ", ".join(f"{k}: {v}" for k, v in counts.items())
    if errors:
        text += f" ({json_errors} of {errors} errors JSON with a message)"
    return text + f"; slowest answer {slowest:.1f} s"


def scenario_redis(args):
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="faults-redis-"))
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
               "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
               "--maxmemory-policy", "noeviction"]
    redis = Server("redis", command)
    wait_port(port)
    stack = Stack("redis", {"APP__QUEUE__URL": f"redis://127.0.0.1:{port}/0"})
    try:
        picture = photo(640, 480, seed=1)
        ids, ids_lock = [], threading.Lock()

        def send(s):
            started = time.time()
            r = upload(s, stack.url, picture, "photo.jpg")
            if r.status_code == 202:
                with ids_lock:
                    ids.append(r.json()["job_id"])
            return r.status_code, is_json_message(r), time.time() - started

        phases = ["before", "Redis stopped", "after restart"]
        current, results, stop, workers = phased_load(stack.url, phases, send)
        time.sleep(10)
        current[0] = phases[1]
        redis.stop()
        time.sleep(10)
        redis.start()
        wait_port(port)
        current[0] = phases[2]
        time.sleep(10)
        stop.set()
        for w in workers:
            w.join()
        images = wait_terminal(stack.url, list(ids), 120)
        counts = statuses(images)
        outage = {p: summarise(results[p]) for p in phases}
        stuck_outage = len(ids) - counts.get("done", 0) - counts.get("failed", 0)

        # Restarted empty: jobs queued while the workers are paused are lost with Redis's data.
        stack.signal_all("worker-", signal.SIGSTOP)
        s = session()
        lost = [upload(s, stack.url, picture, "photo.jpg").json()["job_id"] for _ in range(50)]
        redis.stop(signal.SIGKILL)
        for item in data.iterdir():
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        redis.start()
        wait_port(port)
        restarted = time.time()
        stack.signal_all("worker-", signal.SIGCONT)
        images = wait_terminal(stack.url, lost, 180)
        empty = statuses(images)
        return {
            "command": "python3 bench/faults.py --only redis",
            "outage": outage, "accepted": len(ids), "done": counts.get("done", 0),
            "failed": counts.get("failed", 0), "stuck": stuck_outage,
            "lost_jobs": len(lost), "lost_done": empty.get("done", 0),
            "lost_stuck": len(lost) - empty.get("done", 0) - empty.get("failed", 0),
            "recovered_after_s": round(time.time() - restarted),
        }
    finally:
        stack.stop()
        redis.stop()
        shutil.rmtree(data, ignore_errors=True)


def scenario_mongodb(args):
    server = TOOLS / "bin" / "secantusd-rs"
    if not server.exists():
        subprocess.run([str(ROOT / "infra" / "setup"), "test"], check=True)
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="faults-mongodb-"))
    mongo = Server("mongodb", [str(server), "--host", "127.0.0.1", "--port", str(port),
                               "--storage-path", str(data / "db")])
    wait_port(port)
    stack = Stack("mongodb", {"APP__STORE__URI": f"mongodb://127.0.0.1:{port}/"})
    try:
        acked, lock = [], threading.Lock()

        def send(s):
            """One order, its 503s retried with the same key (as a careful client does), for at
            most 30 s; the first answer is what the phase records."""
            key = os.urandom(16).hex()
            order = {"product": "Laptop", "quantity": 1, "customer_name": key,
                     "customer_address": "123 Main St"}
            first = None
            deadline = time.time() + 30
            while True:
                started = time.time()
                r = s.post(f"{stack.url}/orders", json=order, headers={"Idempotency-Key": key},
                           timeout=30)
                first = first or (r.status_code, is_json_message(r), time.time() - started)
                if r.status_code == 201:
                    with lock:
                        acked.append({"key": key, "id": r.json()["order"]["_id"]})
                    break
                if r.status_code != 503 or time.time() > deadline:
                    break
                time.sleep(0.5)
            return first

        phases = ["before", "MongoDB stopped", "after restart"]
        current, results, stop, workers = phased_load(stack.url, phases, send, threads=8)
        time.sleep(10)
        current[0] = phases[1]
        mongo.stop()
        stopped = time.time()
        time.sleep(10)
        mongo.start()
        wait_port(port)
        current[0] = phases[2]
        restarted = time.time()
        first_201 = None
        s = session()
        while first_201 is None and time.time() < restarted + 60:
            key = os.urandom(16).hex()
            r = s.post(f"{stack.url}/orders", headers={"Idempotency-Key": key}, timeout=30,
                       json={"product": "probe", "quantity": 1, "customer_name": key,
                             "customer_address": "x"})
            if r.status_code == 201:
                first_201 = time.time() - restarted
                acked.append({"key": key, "id": r.json()["order"]["_id"]})
            else:
                time.sleep(0.2)
        time.sleep(10)
        stop.set()
        for w in workers:
            w.join()
        back = read_back(stack.url, acked)
        extra = duplicates(all_orders(stack.url), {a["key"] for a in acked})
        return {
            "command": "python3 bench/faults.py --only mongodb",
            "outage": {p: summarise(results[p]) for p in phases},
            "outage_s": round(restarted - stopped),
            "first_201_after_restart_s": None if first_201 is None else round(first_201, 1),
            "acknowledged": len(acked), "read_back": back, **extra,
        }
    finally:
        stack.stop()
        mongo.stop()
        shutil.rmtree(data, ignore_errors=True)


def scenario_corpus(args):
    stack = Stack("corpus")
    try:
        base = {pid: rss for pid, rss in zip(stack.pids("worker-"), stack.peak_rss_mib("worker-"))}
        s, rows = session(), []
        files = corpus()
        for name, data in files:
            r = upload(s, stack.url, data, "picture.jpg")
            rows.append({"file": name, "bytes": len(data), "upload": r.status_code,
                         "message": refusal(r) if r.status_code != 202 else None,
                         "id": r.json()["job_id"] if r.status_code == 202 else None})
        ids = [row["id"] for row in rows if row["id"]]
        started = time.time()
        images = wait_terminal(stack.url, ids, 240)
        for row in rows:
            image = images.get(row["id"]) if row["id"] else None
            if image:
                row["outcome"] = image["status"]
                row["reason"] = image["error"]
                row["attempts"] = image["attempts"]
            if row["file"].startswith("JPEG/HTML") and row["id"]:
                r = s.get(f"{stack.url}/images/{row['id']}/original", timeout=10)
                row["served_as"] = (f"{r.headers.get('content-type')}, "
                                    f"X-Content-Type-Options: "
                                    f"{r.headers.get('x-content-type-options')}")
        peaks = stack.peak_rss_mib("worker-")
        return {
            "command": "python3 bench/faults.py --only corpus",
            "rows": rows, "seconds": round(time.time() - started),
            "worker_rss_start_mib": sorted(round(v) for v in base.values()),
            "worker_rss_peak_mib": sorted(round(v) for v in peaks),
            "decode_max_mib": 256, "concurrency": 2,
        }
    finally:
        stack.stop()


# ---------------------------------------------------------------- report

BEGIN, END = "<!-- bench/faults.py: begin -->", "<!-- bench/faults.py: end -->"


def report(results, path):
    """Replaces the part of `path` between the markers with this run's tables."""
    lines = [BEGIN, "",
             f"Generated by `python3 bench/faults.py` on {datetime.date.today()}: the stack "
             "`infra/run` starts (supervisord; lb, 3 api replicas, 3 workers with 2 jobs each; "
             "SQLite unless said otherwise) on loopback ports and a scratch folder, on this "
             f"machine ({os.cpu_count()} cores, Linux {platform.release()}), clients on the same "
             "cores. Every figure is from that run; the raw results are in "
             "`target/faults/results.json`.", ""]
    o = results.get("orders")
    if o:
        lines += ["### Orders while api replicas die", "",
                  f"`{o['command']}`: Locust, {o['users']} users for {o['seconds']} s, the reference "
                  "scenario with an Idempotency-Key on every POST, through lb; "
                  f"{o['fault']}.", "",
                  "| requests | failed | acknowledged orders | read back | missing | "
                  "duplicates | created without a 201 |", "|---|---|---|---|---|---|---|",
                  f"| {o['requests']:,} | {o['failures']} | {o['acknowledged']:,} | "
                  f"{o['read_back']['ok']:,} | {o['read_back']['missing']} | {o['duplicates']} | "
                  f"{o['unacknowledged']} |", ""]
        if o["failure_kinds"]:
            lines += ["Failures: " + "; ".join(o["failure_kinds"]), ""]
    j = results.get("jobs")
    if j:
        lines += ["### Image jobs while workers die", "",
                  f"`{j['command']}`: {j['uploads']:,} uploads (8 clients, 20 different 1600x1200 "
                  f"PNGs) through lb; {j['fault']}, until the queue drained or 60 s.", "",
                  "| accepted | done | failed | stuck | attempts per image | seconds |",
                  "|---|---|---|---|---|---|",
                  f"| {j['accepted']:,} | {j['done']:,} | {j['failed']} | {j['stuck']} | "
                  + ", ".join(f"{k}: {v}" for k, v in j["attempts"].items())
                  + f" | {j['seconds']} (uploads {j['upload_seconds']}) |", ""]
        if j["failed_reasons"]:
            lines += ["Failure reasons: " + "; ".join(j["failed_reasons"]), ""]
    r = results.get("redis")
    if r:
        lines += ["### Redis stopped, and restarted empty", "",
                  f"`{r['command']}`: the stack on a Redis queue (redis-server, `appendonly yes`, "
                  "`appendfsync everysec`); 4 clients upload a 640x480 JPEG in a loop. Redis is "
                  "stopped (SIGTERM) for 10 s and started again on the same data.", "",
                  "| phase | upload answers |", "|---|---|"]
        lines += [f"| {phase} | {text} |" for phase, text in r["outage"].items()]
        lines += ["", f"Afterwards: {r['accepted']} accepted uploads, {r['done']} done, "
                  f"{r['failed']} failed, **{r['stuck']} stuck**.", "",
                  f"Restarted empty: with the workers paused (SIGSTOP), {r['lost_jobs']} uploads "
                  "queue their jobs; Redis is SIGKILLed, its data deleted, started empty, and the "
                  f"workers resumed: {r['lost_done']} done, **{r['lost_stuck']} stuck**, all "
                  f"finished {r['recovered_after_s']} s after the restart (the reconciler "
                  "re-queues an unfinished image with no job after `queue.reconcile_after_ms`, "
                  "60 s).", ""]
    m = results.get("mongodb")
    if m:
        lines += ["### MongoDB stopped", "",
                  f"`{m['command']}`: the stack on the MongoDB-compatible test server; 8 clients "
                  "place orders, each with its own Idempotency-Key, retrying a 503 with the same "
                  f"key every 0.5 s for up to 30 s. The server is stopped for {m['outage_s']} s "
                  "and started again on the same data; nothing else is restarted.", "",
                  "| phase | first answer to each order |", "|---|---|"]
        lines += [f"| {phase} | {text} |" for phase, text in m["outage"].items()]
        lines += ["", f"First 201 {m['first_201_after_restart_s']} s after the server was back. "
                  f"{m['acknowledged']:,} orders acknowledged, {m['read_back']['ok']:,} read back, "
                  f"**{m['read_back']['missing']} missing**, {m['duplicates']} duplicates, "
                  f"{m['unacknowledged']} created without a 201.", ""]
    c = results.get("corpus")
    if c:
        lines += ["### Hostile pictures", "",
                  f"`{c['command']}`: each file uploaded through lb, then followed to its end.", "",
                  "| file | bytes | upload | outcome |", "|---|---|---|---|"]
        for row in c["rows"]:
            if row["upload"] != 202:
                outcome = f"refused: {row['message']}"
            else:
                outcome = f"{row.get('outcome', 'unfinished')}"
                if row.get("attempts"):
                    outcome += f" ({row['attempts']} attempt{'s' if row['attempts'] > 1 else ''})"
                if row.get("reason"):
                    outcome += f": {row['reason']}"
                if row.get("served_as"):
                    outcome += f"; the original is served as {row['served_as']}"
            lines.append(f"| {row['file']} | {row['bytes']:,} | {row['upload']} | {outcome} |")
        lines += ["", f"Workers' RSS: {c['worker_rss_start_mib']} MiB at start, peak "
                  f"{c['worker_rss_peak_mib']} MiB (VmHWM) after the corpus; the bound is about "
                  f"20 MiB + concurrency ({c['concurrency']}) × `worker.decode_max_bytes` "
                  f"({c['decode_max_mib']} MiB).", ""]
    lines.append(END)
    text = path.read_text()
    path.write_text(text[:text.index(BEGIN)] + "\n".join(lines) + text[text.index(END) + len(END):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--report", default=str(ROOT / "docs" / "reliability.md"),
                        help="a file with the markers; the part between them is replaced")
    args = parser.parse_args()
    if Path(sys.prefix).resolve() != VENV.resolve():
        # Locust, requests and Pillow come from the bench virtualenv.
        subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
        os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
    build("-p", "api", "-p", "lb", "-p", "seed")
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        results[name] = globals()[f"scenario_{name}"](args)
        print(json.dumps(results[name], indent=1)[:3000], flush=True)
        results_path.write_text(json.dumps(results, indent=1))
    report({k: results[k] for k in SCENARIOS if k in results}, Path(args.report))
    print(f"== report: {args.report}")


if __name__ == "__main__":
    main()
