"""What keeping the files in an S3 bucket costs, beside the folder store, in the same run: the
api and one worker (release builds, SQLite store and queue) with `images.blob_url` a folder, then
a bucket on a local Garage (infra/s3-test-server, loopback: no network latency, so the figures
are our code's and the protocol's, not a data centre's).

Per picture (a ~1.6 MB JPEG, stored in one request; a ~7 MB JPEG, past one 5 MiB part, stored
as a multipart upload) and store, --repeat uploads one after another, each followed to `done`:
- upload: the POST's time, client side (multipart body read, header checked, file stored,
  record written, job queued);
- thumbnail: the worker's time for the job (`duration_us` of its "thumbnail done" line: read the
  original, decode, resize, encode, store the thumbnail, record it);
- download: a GET of the original, client side;
- S3 requests per upload, per thumbnail and per download, counted by Garage itself (its
  `api_s3_request_counter` metrics), by operation.
Medians with the spread (min-max).

Usage: python3 bench/blobs.py [--repeat 15]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, RELEASE, ROOT, Server, build, create_key  # noqa: E402

VENV_PYTHON = CACHE / "venv" / "bin" / "python"


def picture(width, height):
    """A noisy JPEG (q90) of `width`x`height`, made by Pillow: noise keeps it large."""
    code = ("import sys, os; from PIL import Image; w, h = int(sys.argv[1]), int(sys.argv[2]);"
            "Image.frombytes('RGB', (w, h), os.urandom(w * h * 3)).save(sys.stdout.buffer,"
            " 'JPEG', quality=90)")
    return subprocess.run([str(VENV_PYTHON), "-c", code, str(width), str(height)],
                          check=True, capture_output=True).stdout


def multipart(data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            "filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# The API key every request sends (made in main with `api keys create`).
HEADERS = {}


def request(method, url, body=None, content_type=None):
    started = time.perf_counter()
    req = urllib.request.Request(url, data=body, method=method, headers=HEADERS)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as response:
        payload = response.read()
    return (time.perf_counter() - started) * 1000, payload


def s3_counts(admin):
    """Garage's request counters by S3 operation."""
    if admin is None:
        return {}
    text = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
    counts = {}
    for match in re.finditer(r'^api_s3_request_counter\{api_endpoint="(\w+)"\} (\d+)$', text,
                             re.MULTILINE):
        counts[match.group(1)] = int(match.group(2))
    return counts


def delta(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def worker_durations(log):
    durations = {}
    for line in Path(log).read_text().splitlines():
        if "thumbnail done" in line:
            entry = json.loads(line)
            fields = entry.get("fields", entry)
            durations[fields["image"]] = int(fields["duration_us"]) / 1000
    return durations


def measure(kind, env, pictures, repeat, admin, work):
    api = Server([str(RELEASE / "api")], env=env, cwd=work)
    worker_log = Path(work) / f"worker-{kind}.log"
    # JSON lines from the worker, whose "thumbnail done" lines carry each job's duration.
    worker_process = subprocess.Popen([str(RELEASE / "worker")], cwd=work,
                                      env={**os.environ, **env, "APP__LOG__FORMAT": "json"},
                                      stdout=open(worker_log, "w"), stderr=subprocess.STDOUT)
    results = {}
    try:
        for name, data in pictures.items():
            body, content_type = multipart(data)
            rows = []
            for _ in range(repeat + 1):
                counts = s3_counts(admin)
                upload_ms, payload = request("POST", f"{api.url}/images", body, content_type)
                job = json.loads(payload)["job_id"]
                after_upload = s3_counts(admin)
                deadline = time.time() + 60
                while True:
                    _, status = request("GET", f"{api.url}/images/{job}")
                    if json.loads(status)["status"] == "done":
                        break
                    if time.time() > deadline:
                        raise RuntimeError(f"{job} not done: {status}")
                    time.sleep(0.01)
                after_thumbnail = s3_counts(admin)
                download_ms, original = request("GET", f"{api.url}/images/{job}/original")
                assert original == data, "the original read back differs"
                after_download = s3_counts(admin)
                rows.append({"job": job, "upload_ms": upload_ms, "download_ms": download_ms,
                             "upload_requests": delta(counts, after_upload),
                             "thumbnail_requests": delta(after_upload, after_thumbnail),
                             "download_requests": delta(after_thumbnail, after_download)})
            rows = rows[1:]  # the first warms connections and caches up
            durations = worker_durations(worker_log)
            for row in rows:
                row["thumbnail_ms"] = durations[row["job"]]
            results[name] = rows
    finally:
        worker_process.terminate()
        worker_process.wait(timeout=20)
        api.stop()
    return results


def spread(rows, key):
    values = [row[key] for row in rows]
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}-{max(values):,.1f})"


def requests_text(rows, key):
    """The requests of one operation, as 'N (Op a, Op b)' when every repeat made the same."""
    shapes = {json.dumps(row[key], sort_keys=True) for row in rows}
    if len(shapes) != 1:
        return "varied: " + "; ".join(sorted(shapes))
    counts = rows[0][key]
    if not counts:
        return "0"
    return f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    subprocess.run([str(ROOT / "infra" / "setup"), "bench"], check=True)
    subprocess.run([str(ROOT / "infra" / "setup"), "test"], check=True)
    build("-p", "api", "--bin", "api", "--bin", "worker")
    made = [picture(1550, 1160), picture(3300, 2400)]
    pictures = {f"{len(data) / 1e6:.1f} MB JPEG": data for data in made}
    sizes = {name: len(data) for name, data in pictures.items()}
    with tempfile.TemporaryDirectory() as work:
        garage = Path(work) / "garage"
        subprocess.run([str(ROOT / "infra" / "s3-test-server"), str(garage)], check=True)
        try:
            s3 = dict(line.removeprefix("export ").split("=", 1)
                      for line in (garage / "env").read_text().splitlines())
            common = {"APP__SERVER__LISTEN": "127.0.0.1:0", "APP__WORKER__CONCURRENCY": "1", "APP__QUEUE__RETRY_BASE_MS": "50",
                      "APP__STORE__URI": f"sqlite://{work}/orders.db"}
            key = create_key(common["APP__STORE__URI"], "images:read,images:write")
            HEADERS["Authorization"] = f"Bearer {key}"
            folder = measure("folder", {**common, "APP__IMAGES__BLOB_URL": f"{work}/blobs"},
                             pictures, args.repeat, None, work)
            bucket_url = (f"s3://{s3['ORDERS_TEST_S3_BUCKET']}/bench"
                          f"?endpoint={s3['ORDERS_TEST_S3_ENDPOINT']}&region=garage")
            on_s3 = measure("s3", {**common, "APP__IMAGES__BLOB_URL": bucket_url,
                                   "AWS_ACCESS_KEY_ID": s3["ORDERS_TEST_S3_KEY_ID"],
                                   "AWS_SECRET_ACCESS_KEY": s3["ORDERS_TEST_S3_SECRET"]},
                            pictures, args.repeat, s3["ORDERS_TEST_S3_ADMIN"], work)
        finally:
            subprocess.run(["kill", (garage / "pid").read_text().strip()], check=False)
    print(f"\n{args.repeat} uploads per picture and store, one after another; ms: median (min-max)")
    print("| picture | store | upload ms | thumbnail ms | download ms |")
    print("| --- | --- | --- | --- | --- |")
    for name in pictures:
        for kind, results in (("folder", folder), ("S3 (Garage)", on_s3)):
            rows = results[name]
            print(f"| {name} ({sizes[name]:,} B) | {kind} | {spread(rows, 'upload_ms')} | "
                  f"{spread(rows, 'thumbnail_ms')} | {spread(rows, 'download_ms')} |")
    print("\nS3 requests, counted by Garage")
    print("| picture | per upload | per thumbnail | per download |")
    print("| --- | --- | --- | --- |")
    for name in pictures:
        rows = on_s3[name]
        print(f"| {name} | {requests_text(rows, 'upload_requests')} | "
              f"{requests_text(rows, 'thumbnail_requests')} | "
              f"{requests_text(rows, 'download_requests')} |")


if __name__ == "__main__":
    main()
