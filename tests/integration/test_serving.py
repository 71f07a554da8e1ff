"""The Redis read model and the HTTP API, against a real redis-server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pytest
import redis

from streams.broker import EmbeddedBroker
from tests.integration.conftest import (
    RedisServer,
    RunningWorker,
    new_prefix,
    start_worker,
)
from tests.integration.kafka_io import produce, read_customers

pytestmark = pytest.mark.integration

DAY = 86_400_000
BASE = 1_704_031_200_000  # 2024-01-01T00:00:00+10:00
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def serving(
    broker: EmbeddedBroker,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningWorker]:
    home = tmp_path_factory.mktemp("serving")
    env = {
        "TARIFFSTREAM_REDIS_URL": redis_server.url,
        "TARIFFSTREAM_API_TOKEN": TOKEN,
        "TARIFFSTREAM_SERVING__MIRROR_STREAMS": "true",
    }
    running = start_worker(
        broker, new_prefix(), home / "w.log", home / "d", extra_env=env
    )
    try:
        yield running
    finally:
        running.stop()


def http(
    port: int, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = (
        None
        if body is None
        else (body if isinstance(body, bytes) else orjson.dumps(body))
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="POST" if data is not None else "GET",
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def wait_for(check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, KeyError, AssertionError):
            result = None
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def days(
    customer: str, first: int, count: int, kwh_per_day: float
) -> list[tuple[str, bytes, bytes]]:
    return [
        (
            "meter-readings",
            customer.encode(),
            orjson.dumps(
                {
                    "customer_id": customer,
                    "start": BASE + d * DAY,
                    "interval_minutes": 30,
                    "values": [kwh_per_day / 48] * 48,
                }
            ),
        )
        for d in range(first, first + count)
    ]


def test_health_and_readiness(serving: RunningWorker) -> None:
    assert wait_for(lambda: http(serving.web_port, "/healthz")[0] == 200)
    assert wait_for(
        lambda: (
            http(serving.web_port, "/readyz") == (200, {"ready": True, "problems": []})
        )
    )


def test_a_redis_restart_mid_replay_loses_nothing_in_the_read_model(
    serving: RunningWorker, redis_server: RedisServer
) -> None:
    customers = [f"rm-{n}" for n in range(6)]
    first = [m for c in customers for m in days(c, 0, 40, 9.0)]
    rest = [m for c in customers for m in days(c, 40, 60, 9.0)]
    produce(serving.broker.bootstrap, [(serving.topic(t), k, v) for t, k, v in first])
    assert wait_for(
        lambda: all(
            http(serving.web_port, f"/api/customers/{c}")[0] == 200 for c in customers
        )
    )
    redis_server.stop()
    produce(serving.broker.bootstrap, [(serving.topic(t), k, v) for t, k, v in rest])
    status, _ = http(serving.web_port, "/api/customers/rm-0")
    assert status == 503
    assert wait_for(
        lambda: _metric(serving.web_port, "tariffstream_read_model_lag_seconds") > 0
    )
    redis_server.start()

    def caught_up() -> bool:
        table = read_customers(serving.broker.bootstrap, serving.changelog("customers"))
        for c in customers:
            state = table[c.encode()]
            if state["watermark_ms"] != BASE + 99 * DAY + 47 * 1_800_000:
                return False
            view = http(serving.web_port, f"/api/customers/{c}")[1]
            booked = {m["month"]: m["kwh"] for m in view["months"]}
            if booked != {
                "2024-01": 279.0,
                "2024-02": 261.0,
                "2024-03": 279.0,
                "2024-04": 81.0,
            }:
                return False
        return True

    assert wait_for(caught_up, timeout=120)
    assert _metric(serving.web_port, "tariffstream_read_model_lag_seconds") == 0


def test_terminals_read_packages_campaigns_and_alerts(serving: RunningWorker) -> None:
    events = [
        (
            "package-events",
            b"API-P",
            orjson.dumps(
                {"package_id": "API-P", "kind": "review", "good": True, "at": BASE + i}
            ),
        )
        for i in range(10)
    ] + [
        (
            "package-events",
            b"API-P",
            orjson.dumps(
                {"package_id": "API-P", "kind": "unsubscribe", "at": BASE + DAY}
            ),
        )
    ]
    produce(serving.broker.bootstrap, [(serving.topic(t), k, v) for t, k, v in events])
    package = wait_for(
        lambda: (lambda r: r[1] if r[0] == 200 and r[1]["tr"] == 1 else None)(
            http(serving.web_port, "/api/packages/API-P")
        )
    )
    assert package is not None
    # 10 good reviews: TS 10, medium, level 2; one unsubscribe: TS 0, cold, level 1
    assert (package["reviews"], package["hl"], package["heat"], package["level"]) == (
        10,
        1.0,
        "cold",
        1,
    )
    assert any(
        p["package_id"] == "API-P" for p in http(serving.web_port, "/api/packages")[1]
    )
    campaigns = wait_for(
        lambda: [
            c
            for c in http(serving.web_port, "/api/campaigns")[1]
            if c["package_id"] == "API-P"
        ]
    )
    assert [(c["campaign_id"], c["status"]) for c in campaigns] == [
        ("API-P-c2", "running"),
        ("API-P-c1", "ended"),
    ]
    alerts = wait_for(
        lambda: [
            a
            for a in http(serving.web_port, "/api/alerts")[1]
            if a.get("package_id") == "API-P"
        ]
    )
    # c1 ends where it began (TS 0 before the 10th review, 0 after the unsubscribe)
    assert {(a["campaign_id"], a["kind"]) for a in alerts} == {
        ("API-P-c1", "ineffective_campaign"),
        ("API-P-c2", "ineffective_campaign"),
    }
    assert http(serving.web_port, "/api/packages/NOPE")[0] == 404


def test_a_decision_through_the_api_switches_the_customer(
    serving: RunningWorker,
) -> None:
    messages = [
        (
            "catalog",
            b"residential:2",
            orjson.dumps(
                {
                    "op": "upsert",
                    "customer_type": "residential",
                    "tier": 2,
                    "package_id": "API-RES-2",
                }
            ),
        ),
        (
            "customers",
            b"api-1",
            orjson.dumps(
                {
                    "customer_id": "api-1",
                    "customer_type": "residential",
                    "tier_on_record": 3,
                    "package_on_record": "API-RES-3",
                }
            ),
        ),
        *days("api-1", 0, 130, 10.0),
    ]
    produce(
        serving.broker.bootstrap, [(serving.topic(t), k, v) for t, k, v in messages]
    )
    view = wait_for(
        lambda: (
            lambda r: r[1] if r[0] == 200 and r[1]["pending_recommendation"] else None
        )(http(serving.web_port, "/api/customers/api-1"))
    )
    assert view is not None
    rec = view["pending_recommendation"]["id"]
    path = f"/api/recommendations/{rec}/decision"
    assert http(serving.web_port, path, {"decision": "accept"})[0] == 401
    assert http(serving.web_port, path, {"decision": "accept"}, token="wrong")[0] == 403
    assert http(serving.web_port, path, {"decision": "maybe"}, token=TOKEN) == (
        400,
        {"error": "expected accept or decline", "field": "decision"},
    )
    assert http(serving.web_port, path, b"{not json", token=TOKEN)[0] == 400
    status, body = http(
        serving.web_port,
        path,
        {"decision": "accept", "at": BASE + 131 * DAY},
        token=TOKEN,
    )
    assert status == 202 and body["decision"]["customer_id"] == "api-1"
    switched = wait_for(
        lambda: (
            http(serving.web_port, "/api/customers/api-1")[1]["package_on_record"]
            == "API-RES-2"
        )
    )
    assert switched


def test_writes_are_refused_when_no_token_is_configured(worker: RunningWorker) -> None:
    assert wait_for(lambda: http(worker.web_port, "/healthz")[0] == 200)
    status, body = http(
        worker.web_port,
        "/api/recommendations/x-r1/decision",
        {"decision": "accept"},
        token="anything",
    )
    assert status == 403 and "disabled" in body["error"]
    assert (
        http(worker.web_port, "/api/customers/x")[0] == 503
    )  # no read model configured


def _stream_events(server: RedisServer, stream: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(server.url)
    try:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(stream))
        return [orjson.loads(fields[b"event"]) for _, fields in entries]
    finally:
        client.close()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=5
    ) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0
