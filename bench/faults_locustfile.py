"""The reference scenario (locustfile.py ReferenceUser) as a careful client plays it, for
bench/faults.py: every POST carries its own Idempotency-Key, which is also the order's
customer_name, so that afterwards each acknowledged order can be read back and duplicates
counted. The (key, _id) of every 201 is written to FAULTS_ACKED (JSON lines) when the run ends.
"""

import json
import os
import uuid

from locust import FastHttpUser, between, events, task

ACKED = []


class KeyedReferenceUser(FastHttpUser):
    wait_time = between(1, 3)
    # The stack's API key (ORDERS_API_KEY), as in locustfile.py.
    default_headers = ({"Authorization": f"Bearer {os.environ['ORDERS_API_KEY']}"}
                       if os.environ.get("ORDERS_API_KEY") else None)

    @task
    def list_orders(self):
        self.client.get("/orders", name="/orders")

    @task
    def create_order(self):
        key = uuid.uuid4().hex
        order = {"product": "Laptop", "quantity": 1, "customer_name": key,
                 "customer_address": "123 Main St"}
        with self.client.post("/orders", json=order, name="/orders",
                              headers={"Idempotency-Key": key},
                              catch_response=True) as response:
            if response.status_code == 201:
                ACKED.append((key, response.json()["order"]["_id"]))
                response.success()
            else:
                response.failure(f"status {response.status_code}: {response.text[:120]}")


@events.test_stop.add_listener
def write_acknowledged(**_):
    path = os.environ.get("FAULTS_ACKED")
    if path:
        with open(path, "w") as out:
            for key, order in ACKED:
                out.write(json.dumps({"key": key, "id": order}) + "\n")
