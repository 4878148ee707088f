"""Load scenarios for Locust.

ReferenceUser is the reference team's scenario: each user lists the orders and places one, waiting
1-3 s between requests. Run it headless against the api (or the load balancer):

    locust -f locustfile.py --headless -u 1000 -r 25 -t 60s -H http://127.0.0.1:8080

Request names are grouped by route template, so the statistics have one row per endpoint.
"""

from locust import FastHttpUser, between, task

ORDER = {
    "product": "Laptop",
    "quantity": 1,
    "customer_name": "John Doe",
    "customer_address": "123 Main St",
}


class ReferenceUser(FastHttpUser):
    wait_time = between(1, 3)

    @task
    def list_orders(self):
        self.client.get("/orders", name="/orders")

    @task
    def create_order(self):
        self.client.post("/orders", json=ORDER, name="/orders")
