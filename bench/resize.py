"""Thumbnails: our resize (libjpeg-turbo shrink-on-load + fast_image_resize) against Pillow and
libvips, in the same run, one core each (taskset), single-threaded.

Per photo and tool: CPU time per image (decode + resize + JPEG q85 encode; PNG for the RGBA
photo), median and spread over --repeat runs after one warm-up; the process's peak RSS; and the
PSNR of the tool's output (written as PNG, lossless) against a full-decode Lanczos reference
(Pillow: whole image decoded, then resized with LANCZOS to the tool's output size).

The photos come from Debian packages, fetched with `apt-get download` + `dpkg -x` into
target/bench/photos (nothing is committed).

Then (unless --skip-load) the orders api's p99 under a steady GET load, with and without 50
uploads/s being resized by a worker: api on one core; worker, oha and the uploader on the other.

Usage: python3 bench/resize.py [--repeat 15] [--size 300] [--seconds 10] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (CACHE, GENERATOR_CPU, RELEASE, ROOT, SERVER_CPU, Server,  # noqa: E402
                    build, free_port, oha)

VENV_PYTHON = CACHE / "venv" / "bin" / "python"
PHOTOS = CACHE / "photos"
PACKAGES = {
    "lomiri-wallpapers-16.04": ["usr/share/backgrounds/Dragonfly_by_Bolly.jpg"],
    "mate-backgrounds": ["usr/share/backgrounds/mate/nature/Storm.jpg",
                         "usr/share/backgrounds/mate/abstract/Gulp.png"],
}
TOOLS = ["ours", "pillow-resize", "pillow-thumbnail", "vips"]


def fetch_photos():
    """The three photos, plus Dragonfly re-encoded as a baseline q92 4:2:0 JPEG (a phone's)."""
    wanted = {Path(p).name: p for paths in PACKAGES.values() for p in paths}
    if not all((PHOTOS / name).exists() for name in wanted):
        PHOTOS.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as work:
            for package, paths in PACKAGES.items():
                subprocess.run(["apt-get", "download", package], cwd=work, check=True,
                               capture_output=True)
                deb = next(Path(work).glob(f"{package}_*.deb"))
                subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(work) / "x")], check=True)
                for path in paths:
                    (PHOTOS / Path(path).name).write_bytes((Path(work) / "x" / path).read_bytes())
    baseline = PHOTOS / "Dragonfly_baseline_q92.jpg"
    if not baseline.exists():
        subprocess.run([str(VENV_PYTHON), "-c", (
            "import sys; from PIL import Image; Image.open(sys.argv[1]).save(sys.argv[2], 'JPEG',"
            " quality=92, subsampling=2, progressive=False)"),
            str(PHOTOS / "Dragonfly_by_Bolly.jpg"), str(baseline)], check=True)
    return [baseline, PHOTOS / "Dragonfly_by_Bolly.jpg", PHOTOS / "Storm.jpg", PHOTOS / "Gulp.png"]


def tool_command(tool, photo, out, repeat, size):
    """The command making `repeat` thumbnails of `photo` with `tool`, the last written to `out`
    (as PNG when `out` ends in .png)."""
    if tool == "ours":
        command = [str(RELEASE / "examples" / "thumbnail"), str(photo), str(out),
                   "--repeat", str(repeat), "--size", str(size)]
        return command + ["--png"] if out.suffix == ".png" else command
    return [str(VENV_PYTHON), str(ROOT / "bench" / "resize" / "anchor.py"), tool,
            str(photo), str(out), str(repeat), str(size)]


def run_tool(tool, photo, out, repeat, size):
    """Runs one tool pinned to one core; returns the CPU ms of each image."""
    command = tool_command(tool, photo, out, repeat, size)
    env = dict(os.environ, VIPS_CONCURRENCY="1", OMP_NUM_THREADS="1")
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], stdout=subprocess.PIPE,
                               text=True, env=env)
    stdout, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"{tool} failed on {photo.name}")
    return [float(line) for line in stdout.split()]


def peak_rss_mib(tool, photo, out, size):
    """Peak RSS of a process making one thumbnail, measured by GNU time: a child of this
    (Python) process would inherit its high-water mark across exec."""
    command = tool_command(tool, photo, out, 1, size)
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, VIPS_CONCURRENCY="1"))
    if result.returncode:
        raise SystemExit(f"{tool} failed on {photo.name}: {result.stderr}")
    return int(result.stderr.split()[-1]) / 1024


def baseline_rss_mib(work):
    """What each kind of process costs before a real image: the Python interpreter with Pillow
    and pyvips loaded, and our example binary making the thumbnail of a 1x1 JPEG."""
    python = subprocess.run(["/usr/bin/time", "-f", "%M", str(VENV_PYTHON), "-c",
                             "import PIL.Image, pyvips"], capture_output=True, text=True, check=True)
    tiny = work / "tiny.jpg"
    subprocess.run([str(VENV_PYTHON), "-c", "import sys; from PIL import Image; "
                    "Image.new('RGB', (1, 1)).save(sys.argv[1])", str(tiny)], check=True)
    return (int(python.stderr.split()[-1]) / 1024,
            peak_rss_mib("ours", tiny, work / "tiny.out.jpg", 300))


PSNR_SCRIPT = """
import math, sys
from PIL import Image, ImageChops, ImageStat
source, candidate = sys.argv[1:3]
out = Image.open(candidate)
ref = Image.open(source)
ref.load()
# Transparent pixels have no colour: compare premultiplied RGBa, where they are all zero.
mode = "RGBa" if "A" in ref.mode else "RGB"
ref = ref.convert(mode).resize(out.size, Image.Resampling.LANCZOS)
out = out.convert("RGBA").convert(mode) if mode == "RGBa" else out.convert(mode)
diff = ImageStat.Stat(ImageChops.difference(ref, out))
mse = sum(diff.sum2) / (len(diff.sum2) * out.size[0] * out.size[1])
print("inf" if mse == 0 else 10 * math.log10(255 ** 2 / mse), *out.size)
"""


def psnr(photo, output):
    result = subprocess.run([str(VENV_PYTHON), "-c", PSNR_SCRIPT, str(photo), str(output)],
                            check=True, capture_output=True, text=True).stdout.split()
    return float(result[0]), f"{result[1]}x{result[2]}"


def resize_section(args, work):
    photos = fetch_photos()
    rows = []
    python_rss, ours_rss = baseline_rss_mib(work)
    for photo in photos:
        dims = subprocess.run([str(VENV_PYTHON), "-c",
                               "import sys; from PIL import Image; print(*Image.open(sys.argv[1]).size)",
                               str(photo)], capture_output=True, text=True, check=True).stdout.split()
        alpha = photo.suffix == ".png"
        per_tool = {}
        for tool in TOOLS:
            out = work / f"{photo.stem}.{tool}.{'png' if alpha else 'jpg'}"
            times = run_tool(tool, photo, out, args.repeat + 1, args.size)
            times = times[1:]  # the first run warms caches and lazy initialisation
            quality_out = work / f"{photo.stem}.{tool}.quality.png"
            run_tool(tool, photo, quality_out, 1, args.size)
            db, size = psnr(photo, quality_out)
            per_tool[tool] = {
                "median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
                "rss_mib": peak_rss_mib(tool, photo, work / f"rss.{tool}.{out.suffix[1:]}", args.size),
                "psnr_db": db, "size": size,
            }
        rows.append((photo.name, f"{dims[0]}x{dims[1]}", per_tool))
    print(f"\n## Thumbnails (fit inside {args.size}x{args.size}), one core, CPU ms per image: "
          f"median (min-max) of {args.repeat}")
    print(f"(peak RSS is the whole process; before any real image, the Python tools take "
          f"{python_rss:.0f} MiB with Pillow and pyvips imported, ours {ours_rss:.0f} MiB)\n")
    print("| photo | tool | CPU ms | ours faster by | peak RSS MiB | PSNR dB | output |")
    print("|---|---|---|---|---|---|---|")
    for name, dims, per_tool in rows:
        ours = per_tool["ours"]["median_ms"]
        for tool in TOOLS:
            r = per_tool[tool]
            ratio = "" if tool == "ours" else f"{r['median_ms'] / ours:.2f}x"
            print(f"| {name} {dims} | {tool} | {r['median_ms']:.1f} ({r['min_ms']:.1f}-"
                  f"{r['max_ms']:.1f}) | {ratio} | {r['rss_mib']:.0f} | {r['psnr_db']:.1f} | "
                  f"{r['size']} |")
    return rows


def multipart(path):
    boundary = "benchboundary7d1f"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    body += Path(path).read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load_section(args, work):
    """Orders p99 under a steady load, with and without uploads being processed."""
    data = work / "load"
    data.mkdir()
    port = free_port()
    env = dict(os.environ, APP__SERVER__LISTEN=f"127.0.0.1:{port}",
               APP__STORE__URI=f"sqlite://{data / 'orders.db'}",
               APP__IMAGES__BLOB_URL=str(data / "blobs"), APP__LOG__LEVEL="warn",
               APP__WORKER__CONCURRENCY="1")
    api = Server([str(RELEASE / "api")], env=env, cwd=data, url=f"http://127.0.0.1:{port}/readyz")
    # The worker shares the api's core (a small droplet has few) at the lowest priority, as
    # infra/run starts it; the load generators have the other core to themselves.
    priority = {"idle": ["chrt", "--idle", "0"], "nice": ["nice", "-n", "10"],
                "normal": []}[args.worker_priority]
    worker = subprocess.Popen(["taskset", "-c", SERVER_CPU, *priority, str(RELEASE / "worker")],
                              env=env, cwd=data, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(
            f"{base}/orders", method="POST", headers={"Content-Type": "application/json"},
            data=json.dumps({"product": "Laptop", "quantity": 1, "customer_name": "John Doe",
                             "customer_address": "123 Main St"}).encode())
        order = json.load(urllib.request.urlopen(request))["order"]["_id"]
        body, content_type = multipart(PHOTOS / "Storm.jpg")
        body_file = work / "upload.body"
        body_file.write_bytes(body)
        orders_args = ["-q", str(args.orders_rate), "-z", f"{args.seconds}s", "-c", "16"]
        results = {"without": [], "with": []}
        for _ in range(args.rounds):
            for case in ("without", "with"):
                uploader = None
                if case == "with":
                    uploader = subprocess.Popen(
                        ["taskset", "-c", GENERATOR_CPU, "oha", "--no-tui", "--output-format",
                         "json", "-q", "50", "-z", f"{args.seconds + 1}s", "-c", "8",
                         "-m", "POST", "-T", content_type, "-D", str(body_file), f"{base}/images"],
                        stdout=subprocess.PIPE, text=True)
                    time.sleep(1)
                result = oha(f"{base}/orders/{order}", orders_args)
                uploads = json.loads(uploader.communicate()[0]) if uploader else None
                codes = result["statusCodeDistribution"]
                results[case].append({
                    "p99_ms": result["latencyPercentiles"]["p99"] * 1000,
                    "p50_ms": result["latencyPercentiles"]["p50"] * 1000,
                    "ok": codes.get("200", 0), "other": sum(codes.values()) - codes.get("200", 0),
                    "uploads": uploads["statusCodeDistribution"] if uploads else {},
                })
        backlog_deadline = time.time() + 30
        while time.time() < backlog_deadline:
            pending = count_pending(data / "orders.db")
            if pending == 0:
                break
            time.sleep(0.5)
        print(f"\n## Orders p99 with and without 50 uploads/s ({PHOTOS / 'Storm.jpg'} 1920x1280) "
              f"being resized")
        print(f"GET /orders/{{id}} at {args.orders_rate}/s, 16 connections, {args.seconds} s, "
              f"{args.rounds} rounds; api and worker (1 job at a time, priority {args.worker_priority}) "
              f"on CPU {SERVER_CPU}, oha and the uploader on CPU {GENERATOR_CPU}.\n")
        print("| case | p50 ms | p99 ms median (min-max) | GET 200 / other | uploads by status |")
        print("|---|---|---|---|---|")
        for case, runs in results.items():
            p99 = [r["p99_ms"] for r in runs]
            p50 = statistics.median(r["p50_ms"] for r in runs)
            statuses = {}
            for r in runs:
                for code, n in r["uploads"].items():
                    statuses[code] = statuses.get(code, 0) + n
            print(f"| {case} uploads | {p50:.2f} | {statistics.median(p99):.2f} ({min(p99):.2f}-"
                  f"{max(p99):.2f}) | {sum(r['ok'] for r in runs)} / "
                  f"{sum(r['other'] for r in runs)} | {statuses or '-'} |")
        ratio = statistics.median(r["p99_ms"] for r in results["with"]) / statistics.median(
            r["p99_ms"] for r in results["without"])
        print(f"\np99 with / without uploads: {ratio:.2f}x (goal <= 1.2x); images not done 30 s "
              f"after the last upload: {pending}")
    finally:
        worker.terminate()
        worker.wait()
        api.stop()


def count_pending(db):
    import sqlite3
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM images WHERE status != 'done'").fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker-priority", choices=["idle", "nice", "normal"], default="idle",
                        help="idle: SCHED_IDLE (chrt --idle 0); nice: nice 10; normal")
    parser.add_argument("--repeat", type=int, default=15, help="resizes timed per photo and tool")
    parser.add_argument("--size", type=int, default=300, help="the thumbnail's box, in pixels")
    parser.add_argument("--seconds", type=int, default=10, help="length of one load round")
    parser.add_argument("--rounds", type=int, default=3, help="load rounds per worker setting")
    parser.add_argument("--orders-rate", type=int, default=2000, help="GET /orders/{id} per second")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-resize", action="store_true")
    args = parser.parse_args()
    subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
    build("-p", "api", "--bins", "--example", "thumbnail")
    with tempfile.TemporaryDirectory() as work:
        fetch_photos()
        if not args.skip_resize:
            resize_section(args, Path(work))
        if not args.skip_load:
            load_section(args, Path(work))


if __name__ == "__main__":
    main()
