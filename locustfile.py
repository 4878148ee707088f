"""Load scenarios for Locust (FastHttpUser), selectable by class or by tag:

- ReferenceUser (tag `reference`): the reference team's scenario. Each user lists the orders
  and places one (the reference body), waiting 1-3 s between requests.
- CrudUser (tag `crud`): the full mix over the seeded orders (`seed reset --count N`; set
  SEED_COUNT=N, default 10000): list pages (following `next`), get, create, update and delete
  (only orders it created itself, so the seeded set stays whole), waiting 1-3 s.
- ImageUser (tag `images`): uploads a picture (LOCUST_IMAGE=path, or a small built-in JPEG),
  follows its status until `done` and downloads the thumbnail, waiting 2-5 s.

    locust -f locustfile.py --headless -u 1000 -r 25 -t 60s -H http://127.0.0.1:8000 ReferenceUser
    locust -f locustfile.py --headless -u 50 -r 10 -t 30s -H http://127.0.0.1:8000 --tags crud images

Every request sends the API key in ORDERS_API_KEY (`Authorization: Bearer …`): `infra/run`
prints the stack's development key; `export ORDERS_API_KEY=$(cat data/api-key)`.

Request names are grouped by route template (`/orders/[id]`), so the statistics have one row
per endpoint. bench/loadtest.py runs the reference scenarios and writes the report.
"""

import base64
import os
import random
import struct
import time

from locust import FastHttpUser, between, tag, task

ORDER = {
    "product": "Laptop",
    "quantity": 1,
    "customer_name": "John Doe",
    "customer_address": "123 Main St",
}
SEED_COUNT = int(os.environ.get("SEED_COUNT", "10000"))
SEED_EPOCH = 1_735_689_600  # seed/src/data.rs: the first seeded order's creation second

# A 64x48 baseline JPEG (a gradient), used when LOCUST_IMAGE is not set.
SMALL_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwXExQaFRER"
    "GCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh7/wAARCAAwAEADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcI"
    "CQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRol"
    "JicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ip"
    "qrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAA"
    "AAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLR"
    "ChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaX"
    "mJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEA"
    "PwD5hgsunFX4LL2rWgsvatCCy6cV+lVcYebgMftqZEFl04q/BZe1a8Fl7VfgsunFedVxh9ngMftqZMFl7VfgsunFa0Fl"
    "04rQgsvavOq4w+0wGP21MmCy9qvwWXTitaCy6cVfgsvavOq4w+zwGP21POoLLpxV+Cy9q1oLL2rQgsunFdNXGH8YYDH7"
    "GRBZdOK0ILL2rWgsvar8Fl04rzquMPs8Bj9jJgsvar8Fl04rXgsunFX4LL2rzquMPs8Bj9jJgsvar8Fl04rWgsunFaEF"
    "l7V5tXGH2eAx+x5zBZdOKvwWXtWvBZe1X4LLpxXVVxh/GGAx+2pkwWXTir8Fl7VrQWXtWhBZdOK82rjD7PAY/bUyILL2"
    "q/BZdOK14LL2q/BZe1edVxh9ngMftqZMFl7VfgsunFa0Fl04rQgsvavOq4w+0wGP21P/2Q=="
)


def key_headers():
    """The Authorization header for ORDERS_API_KEY (none when it is unset: every guarded
    request is then answered 401 and counted as a failure)."""
    key = os.environ.get("ORDERS_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else None


def seeded_id(index):
    """The id `seed` gives order `index` (seed/src/data.rs): creation second, "SEED", index."""
    second = SEED_EPOCH + index * 10 // 1000
    return (struct.pack(">I", second) + b"SEED" + struct.pack(">I", index)).hex()


class ReferenceUser(FastHttpUser):
    default_headers = key_headers()
    wait_time = between(1, 3)

    @tag("reference")
    @task
    def list_orders(self):
        self.client.get("/orders", name="/orders")

    @tag("reference")
    @task
    def create_order(self):
        self.client.post("/orders", json=ORDER, name="/orders")


class CrudUser(FastHttpUser):
    default_headers = key_headers()
    wait_time = between(1, 3)

    def on_start(self):
        self.mine = []
        self.cursor = None

    @tag("crud")
    @task(3)
    def get_seeded(self):
        order = seeded_id(random.randrange(SEED_COUNT))
        self.client.get(f"/orders/{order}", name="/orders/[id]")

    @tag("crud")
    @task(2)
    def list_page(self):
        path = "/orders?limit=20" + (f"&after={self.cursor}" if self.cursor else "")
        with self.client.get(path, name="/orders?limit=20", catch_response=True) as response:
            if response.status_code == 200:
                self.cursor = response.json().get("next")
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @tag("crud")
    @task(2)
    def create(self):
        with self.client.post("/orders", json=ORDER, name="/orders",
                              catch_response=True) as response:
            if response.status_code == 201:
                self.mine.append(response.json()["order"]["_id"])
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @tag("crud")
    @task(1)
    def update(self):
        if self.mine:
            order = random.choice(self.mine)
            self.client.put(f"/orders/{order}", json={"quantity": random.randint(1, 9)},
                            name="/orders/[id]")

    @tag("crud")
    @task(1)
    def delete(self):
        if self.mine:
            self.client.delete(f"/orders/{self.mine.pop()}", name="/orders/[id]")


class ImageUser(FastHttpUser):
    default_headers = key_headers()
    wait_time = between(2, 5)
    picture = None

    def on_start(self):
        if ImageUser.picture is None:
            path = os.environ.get("LOCUST_IMAGE")
            ImageUser.picture = open(path, "rb").read() if path else SMALL_JPEG

    @tag("images")
    @task
    def upload_and_fetch_thumbnail(self):
        with self.client.post("/images", name="/images", catch_response=True,
                              files={"file": ("photo.jpg", ImageUser.picture, "image/jpeg")}
                              ) as response:
            if response.status_code != 202:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            status_url = response.json()["status_url"]
        deadline = time.time() + 30
        while True:
            with self.client.get(status_url, name="/images/[id]", catch_response=True) as response:
                status = response.json().get("status") if response.status_code == 200 else None
                if status == "done":
                    break
                if status == "failed" or time.time() > deadline:
                    response.failure(f"the thumbnail was not made: {response.text[:200]}")
                    return
            time.sleep(0.25)
        self.client.get(f"{status_url}/thumbnail", name="/images/[id]/thumbnail")
