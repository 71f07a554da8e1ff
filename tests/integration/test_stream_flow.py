"""The whole flow on the embedded broker, through a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import RunningWorker
from tests.integration.kafka_io import collect, produce, read_customers, read_table

pytestmark = pytest.mark.integration

DAY = 86_400_000
BASE = 1_704_031_200_000  # 2024-01-01T00:00:00+10:00


def body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def test_package_events_bring_heat_marketing_and_campaign_effects(
    worker: RunningWorker,
) -> None:
    events = [
        (
            worker.topic("package-events"),
            b"PK-A",
            body(package_id="PK-A", kind="review", good=True, at=BASE + i * 1000),
        )
        for i in range(10)
    ]
    produce(worker.broker.bootstrap, events)
    topics = [
        worker.topic(t)
        for t in ("package-heat", "marketing-actions", "campaign-effects")
    ]
    # Topics are not ordered against each other: stop once the campaign runs.
    collect(
        worker.broker.bootstrap,
        topics[2:],
        lambda seen: any(e["package_id"] == "PK-A" for e in seen[topics[2]]),
    )
    stop = body(package_id="PK-A", command="stop", at=BASE + 8 * DAY)
    produce(
        worker.broker.bootstrap, [(worker.topic("campaign-commands"), b"PK-A", stop)]
    )

    def done(seen: dict[str, list[dict[str, Any]]]) -> bool:
        return any(e["package_id"] == "PK-A" and e["final"] for e in seen[topics[2]])

    seen = collect(worker.broker.bootstrap, topics, done)
    heat = [
        (e["old_heat"], e["new_heat"], e["ts"])
        for e in seen[topics[0]]
        if e["package_id"] == "PK-A"
    ]
    assert heat == [(None, "cold", 0.0), ("cold", "medium", 10.0)]
    actions = [e for e in seen[topics[1]] if e["package_id"] == "PK-A"]
    assert [(a["old_level"], a["new_level"], a["measures"]) for a in actions] == [
        (None, 2, ["home_page_12h_per_day"])
    ]
    effects = [e for e in seen[topics[2]] if e["package_id"] == "PK-A"]
    final = effects[-1]
    assert (final["ts1"], final["ts2"], final["achieved_grade"]) == (0.0, 10.0, "clear")
    assert final["expected_grade"] == "clear" and final["reached"] is True
    assert final["duration_days"] == pytest.approx(8 - 9 / 86_400)
    assert all(e["version"] == 1 for e in effects)


def test_a_recommendation_accepted_switches_and_moves_package_counters(
    worker: RunningWorker,
) -> None:
    t = worker.topic
    messages = [
        (
            t("catalog"),
            b"residential:2",
            body(op="upsert", customer_type="residential", tier=2, package_id="RES-2"),
        ),
        (
            t("customers"),
            b"acc-1",
            body(
                customer_id="acc-1",
                customer_type="residential",
                tier_on_record=3,
                package_on_record="RES-3",
                name="Not Logged",
            ),
        ),
        (
            t("customers"),
            b"dec-1",
            body(
                customer_id="dec-1",
                customer_type="residential",
                tier_on_record=3,
                package_on_record="RES-3",
            ),
        ),
    ]
    for customer in ("acc-1", "dec-1"):
        for day in range(130):  # 10 kWh a day: ~300 kWh a month, band 2
            messages.append(
                (
                    t("meter-readings"),
                    customer.encode(),
                    body(
                        customer_id=customer,
                        start=BASE + day * DAY,
                        interval_minutes=30,
                        values=[10 / 48] * 48,
                    ),
                )
            )
    produce(worker.broker.bootstrap, messages)

    def recommended(seen: dict[str, list[dict[str, Any]]]) -> bool:
        return {r["customer_id"] for r in seen[t("recommendations")]} >= {
            "acc-1",
            "dec-1",
        }

    seen = collect(worker.broker.bootstrap, [t("recommendations")], recommended)
    recs = {r["customer_id"]: r for r in seen[t("recommendations")]}
    assert (recs["acc-1"]["current_package"], recs["acc-1"]["recommended_package"]) == (
        "RES-3",
        "RES-2",
    )
    produce(
        worker.broker.bootstrap,
        [
            (
                t("switch-decisions"),
                b"acc-1",
                body(
                    customer_id="acc-1",
                    recommendation_id=recs["acc-1"]["recommendation_id"],
                    decision="accept",
                    at=BASE + 131 * DAY,
                ),
            ),
            (
                t("switch-decisions"),
                b"dec-1",
                body(
                    customer_id="dec-1",
                    recommendation_id=recs["dec-1"]["recommendation_id"],
                    decision="decline",
                    at=BASE + 131 * DAY,
                ),
            ),
            (
                t("meter-readings"),
                b"dec-1",
                body(customer_id="dec-1", start=BASE + 131 * DAY, kwh=0.2),
            ),
        ],
    )

    def switched(seen: dict[str, list[dict[str, Any]]]) -> bool:
        return {e["package_id"] for e in seen[t("package-heat")]} >= {"RES-2", "RES-3"}

    collect(worker.broker.bootstrap, [t("package-heat")], switched)
    packages = read_table(worker.broker.bootstrap, worker.changelog("packages"))
    assert packages[b"RES-2"]["state"]["sr"] == 1
    assert packages[b"RES-3"]["state"]["tr"] == 1
    customers = read_customers(worker.broker.bootstrap, worker.changelog("customers"))
    assert (
        customers[b"acc-1"]["tier_on_record"],
        customers[b"acc-1"]["package_on_record"],
    ) == (2, "RES-2")
    assert customers[b"dec-1"]["declined_package"] == "RES-2"
    assert customers[b"dec-1"]["pending"] is None
    again = collect(
        worker.broker.bootstrap, [t("recommendations")], lambda s: False, timeout=3
    )
    assert [r["customer_id"] for r in again[t("recommendations")]].count("dec-1") == 1
    assert "Not Logged" not in worker.log.read_text()


BAD = b'{"customer_id": "bad-1", "start": "2024-01-01T00:00:00Z", "kwh": -1}'


@pytest.mark.parametrize(
    ("topic", "key", "value", "reason"),
    [
        ("meter-readings", b"bad-1", BAD, "negative_kwh"),
        (
            "customers",
            b"bad-2",
            b'{"customer_id": "bad-2", "customer_type": "martian"}',
            "unknown_customer_type",
        ),
        ("catalog", b"x", b"\xff\xfe not json", "bad_json"),
        (
            "package-events",
            b"PK-B",
            b'{"package_id": "PK-B", "kind": "review", "at": 0}',
            "missing_field",
        ),
        (
            "switch-decisions",
            b"bad-3",
            b'{"customer_id": "bad-3", "recommendation_id": "nope", "decision": "accept", "at": 0}',
            "unknown_recommendation",
        ),
        (
            "campaign-commands",
            b"PK-B",
            b'{"package_id": "PK-B", "command": "explode", "at": 0}',
            "unknown_kind",
        ),
    ],
)
def test_malformed_messages_reach_dead_letters_and_processing_goes_on(
    worker: RunningWorker, topic: str, key: bytes, value: bytes, reason: str
) -> None:
    marker = f"PK-{topic}"
    produce(
        worker.broker.bootstrap,
        [
            (worker.topic(topic), key, value),
            (
                worker.topic("package-events"),
                marker.encode(),
                body(package_id=marker, kind="push", at=BASE),
            ),
        ],
    )
    letters, heat = worker.topic("dead-letters"), worker.topic("package-heat")

    def done(seen: dict[str, list[dict[str, Any]]]) -> bool:
        return any(
            d["topic"] == worker.topic(topic) and d["reason"] == reason
            for d in seen[letters]
        ) and any(h["package_id"] == marker for h in seen[heat])

    seen = collect(worker.broker.bootstrap, [letters, heat], done)
    letter = next(
        d
        for d in seen[letters]
        if d["topic"] == worker.topic(topic) and d["reason"] == reason
    )
    assert letter["partition"] is not None and letter["offset"] is not None
    if letter["extra"]["encoding"] == "utf-8":
        assert letter["original"].encode() == value
    assert any(h["package_id"] == marker for h in seen[heat]), (
        "worker stopped processing"
    )


def test_publish_loads_json_lines_into_an_input_topic(
    worker: RunningWorker, tmp_path: Path
) -> None:
    from tests.integration.conftest import EMBEDDED

    lines = tmp_path / "customers.jsonl"
    lines.write_text(
        '{"customer_id": "pub-1", "customer_type": "tertiary", "tier_on_record": 1}\n'
        "not json\n"
        '{"customer_id": "pub-2", "customer_type": "primary", "package_on_record": "PRI-2"}\n'
    )
    command = [
        sys.executable,
        "-m",
        "tariffstream.cli",
        "publish",
        "customers",
        str(lines),
        "--broker",
        worker.broker.url,
    ]
    env = {**os.environ, "TARIFFSTREAM_STREAMS__TOPIC_PREFIX": worker.prefix}
    done = subprocess.run(
        [*command, *(["--embedded"] if EMBEDDED else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "line 2: not a JSON object with customer_id" in done.stderr
    assert "published 2 messages" in done.stdout

    def loaded() -> bool:
        table = read_customers(worker.broker.bootstrap, worker.changelog("customers"))
        return b"pub-1" in table and b"pub-2" in table

    deadline = time.monotonic() + 60
    while not loaded() and time.monotonic() < deadline:
        time.sleep(0.5)
    table = read_customers(worker.broker.bootstrap, worker.changelog("customers"))
    assert (table[b"pub-1"]["customer_type"], table[b"pub-1"]["tier_on_record"]) == (
        "tertiary",
        1,
    )
    assert table[b"pub-2"]["package_on_record"] == "PRI-2"
