"""Soak: 200 clients on their own keep-alive connections ask for recommendations for 30 seconds;
every request is answered 200 with a full list. Marked `soak` (deselect with `-m "not soak"`);
RECSYS_SOAK_SECONDS changes the duration."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import pytest

CLIENTS = 200
SECONDS = float(os.environ.get("RECSYS_SOAK_SECONDS", "30"))


@pytest.mark.soak
def test_200_parallel_connections_for_30_seconds_get_no_errors(server, shop):
    _, version = shop.trained_group("aws-user-personalization-v2")
    campaign = shop.campaign(version["solutionVersionArn"])
    start = threading.Barrier(CLIENTS + 1)
    stop = threading.Event()
    answered = [0] * CLIENTS
    errors: list[str] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        start.wait()
        while not stop.is_set():
            body = json.dumps({"campaignArn": campaign, "userId": f"u{number % 70}", "numResults": 10})
            try:
                connection.request("POST", "/recommendations", body=body, headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                payload = answer.read()
                if answer.status != 200 or len(json.loads(payload)["itemList"]) != 10:
                    errors.append(f"client {number}: {answer.status} {payload[:200]!r}")
                    return
            except (OSError, http.client.HTTPException, ValueError) as error:
                errors.append(f"client {number}: {error!r}")
                return
            answered[number] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    stop.wait(SECONDS)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - began
    assert errors == []
    assert all(count > 0 for count in answered), "every connection was served"
    print(f"{sum(answered)} requests on {CLIENTS} connections in {elapsed:.1f} s")
