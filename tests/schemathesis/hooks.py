"""Schemathesis hooks for the orders API (loaded with SCHEMATHESIS_HOOKS).

An Idempotency-Key names one request: a client sends a fresh one with each new request and the
same one only when it repeats that request. Generated data cannot know this and reuses boundary
values of the key across different bodies, which the API rightly refuses (422) or answers with
the first request's stored answer. So every *valid* generated key is replaced by a fresh UUID
before the call; invalid keys (negative tests) are sent as generated, and are still refused.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]([ -~]{0,253}[!-~])?")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and VALID_KEY.fullmatch(str(headers[name])):
            headers[name] = str(uuid.uuid4())
