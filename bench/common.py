"""What the benchmark scripts share: pinned server processes, oha runs, CPU accounting."""

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
RELEASE = TARGET / "release"
CACHE = TARGET / "bench"
TOOLS = Path(os.environ.get("ORDERS_TOOLS", Path.home() / ".cache" / "orders-tools"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
GENERATOR_CPU, SERVER_CPU = "0", "1"


def build(*args):
    subprocess.run(["cargo", "build", "--release", "--locked", *args], cwd=ROOT, check=True)


def create_key(store_uri, scopes="admin"):
    """A new API key (`api keys create`) in the store at `store_uri`."""
    out = subprocess.run([str(RELEASE / "api"), "keys", "create", "--name", "bench",
                          "--scope", scopes],
                         env={**os.environ, "APP__STORE__URI": store_uri},
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def bearer(key):
    """oha's arguments that send `key`."""
    return ["-H", f"Authorization: Bearer {key}"]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid):
    """`pid` and every process below it (gunicorn's workers, say)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


class Server:
    """A server process pinned to SERVER_CPU. It is up when its log says `listening on
    http://…` (its address), or when `url` answers HTTP, or when `port` accepts connections."""

    def __init__(self, command, env=None, cwd=None, url=None, port=None):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], cwd=cwd,
                                     env={**os.environ, **(env or {})},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if port is not None:
                if self._accepts(port):
                    self.url = None
                    return
            elif url is None:
                match = re.search(r"listening on http://(\S+)", Path(self.log.name).read_text())
                if match:
                    self.url = "http://" + match.group(1)
                    return
            elif self._answers(url):
                parts = urllib.parse.urlsplit(url)
                self.url = f"{parts.scheme}://{parts.netloc}"
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{command[0]} did not start:\n{Path(self.log.name).read_text()}")

    @staticmethod
    def _accepts(port):
        import socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    @staticmethod
    def _answers(url):
        import urllib.request
        try:
            urllib.request.urlopen(url, timeout=1)
            return True
        except Exception as error:  # an HTTP error status still means it answers
            return hasattr(error, "code")

    def cpu_seconds(self):
        total = 0.0
        for pid in descendants(self.proc.pid):
            try:
                total += process_cpu_seconds(pid)
            except OSError:
                pass
        return total

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


def oha(url, args):
    out = subprocess.run(["taskset", "-c", GENERATOR_CPU, "oha", "--no-tui",
                          "--output-format", "json", *args, url],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run(server, url, args):
    """One oha run against `server`: throughput, latency, statuses and the server's CPU."""
    before = server.cpu_seconds()
    result = oha(url, args)
    cpu = server.cpu_seconds() - before
    codes = result["statusCodeDistribution"]
    done = sum(codes.values())
    return {"rps": result["summary"]["requestsPerSec"] or 0.0,
            "per_cpu_s": done / cpu if cpu > 0 else float("nan"),
            "p50_ms": (result["latencyPercentiles"]["p50"] or 0) * 1000,
            "p99_ms": (result["latencyPercentiles"]["p99"] or 0) * 1000,
            "codes": codes,
            # oha cancels the requests still in flight when -z runs out: not failures.
            "errors": {k: v for k, v in result["errorDistribution"].items()
                       if "deadline" not in k}}


def summary(runs, key):
    values = [r[key] for r in runs]
    return statistics.median(values), min(values), max(values)


def fmt(runs, key, digits=0):
    median, low, high = summary(runs, key)
    return f"{median:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"
