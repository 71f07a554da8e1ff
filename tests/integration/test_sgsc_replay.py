"""The SGSC file replayed out of order with duplicates equals the batch analysis."""

from __future__ import annotations

import dataclasses
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rules.timezones import parse_zone
from streams.broker import EmbeddedBroker
from streams.replay import encode_messages
from tariffstream.analyze import analyze_readings
from tariffstream.csvinput import CsvOptions, RowRejection, open_csv, read_readings
from tests.helpers import make_settings
from tests.integration.conftest import EMBEDDED, RunningWorker, new_prefix, start_worker
from tests.integration.kafka_io import collect, produce, read_customers, unconsumed

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

SGSC = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "sgsc_smart_meter10_halfhourly.csv"
)


@pytest.fixture(scope="module")
def readings() -> list[Any]:
    if not SGSC.exists():
        pytest.skip(f"real data not found at {SGSC} (a clone without ../shared)")
    options = CsvOptions(
        zone=parse_zone("+10:00"),
        interval_ms=1_800_000,
        customer_type="residential",
        column_map={"start": "reading_datetime", "kwh": "general_supply_kwh"},
    )
    with open_csv(SGSC) as handle:
        rows = list(read_readings(handle, options))
    parsed = [r for r in rows if not isinstance(r, RowRejection)]
    assert len(parsed) == len(rows), "the SGSC file has rows the reader rejects"
    # ids prefixed so this test's customers are its own on the shared worker
    return [dataclasses.replace(r, customer_id=f"sgsc-{r.customer_id}") for r in parsed]


def shuffled_with_duplicates(
    readings: list[Any], seed: int
) -> list[tuple[bytes, bytes]]:
    """Meter-day blocks in random order, and 5% of readings sent again alone."""
    rng = random.Random(seed)
    blocks = list(encode_messages(readings, block_size=48))
    duplicates = list(
        encode_messages(rng.sample(readings, len(readings) // 20), block_size=1)
    )
    messages = [(key, value) for key, value, _ in blocks + duplicates]
    rng.shuffle(messages)
    return messages


def batch_result(readings: list[Any]) -> dict[str, Any]:
    batch = analyze_readings(readings, make_settings(**{"time.timezone": "+10:00"}))
    return {c.customer_id: c for c in batch.customers}


def test_shuffled_replay_with_duplicates_equals_analyze(
    worker: RunningWorker, readings: list[Any]
) -> None:
    topic = worker.topic("meter-readings")
    messages = shuffled_with_duplicates(readings, seed=20121007)
    produce(worker.broker.bootstrap, [(topic, key, value) for key, value in messages])

    expected = batch_result(readings)
    customers = _wait_for_state(worker, expected)
    changes = worker.topic("tier-changes")
    seen = collect(worker.broker.bootstrap, [changes], lambda s: False, timeout=5)
    last_tier = {
        e["customer_id"]: e["new_tier"]
        for e in seen[changes]
        if e["customer_id"] in expected
    }
    assert last_tier == {c: r.tier for c, r in expected.items() if r.tier is not None}
    assert_equal_to_batch(customers, expected)


def assert_equal_to_batch(
    customers: dict[bytes, Any], expected: dict[str, Any]
) -> None:
    for customer_id, report in expected.items():
        state = customers[customer_id.encode()]
        assert state["tier"] == report.tier, customer_id
        by_label = {m.label: m.mwh for m in report.months}
        for month, (mwh, _cover) in state["months"].items():
            label = f"{int(month) // 12:04d}-{int(month) % 12 + 1:02d}"
            assert mwh == by_label[label], (customer_id, label)


def booked_readings(port: int) -> float:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("tariffstream_readings_total "):
                    return float(line.split()[1])
    except OSError:
        return 0.0
    return 0.0


@pytest.mark.skipif(
    EMBEDDED,
    reason=(
        "embedded broker fault: after a member is SIGKILLed its group coordinator "
        "revokes the survivor and never completes the next join (seen 3 runs in 4); "
        "this test runs on the Apache Kafka lane (TARIFFSTREAM_TEST_BROKER=kafka)"
    ),
)
# One rerun, and only of a stall: input left unconsumed after the rebalance that
# follows the kill (faust-streaming #629 reports partitions never fetched again;
# README, Limitations). A short total with every reading consumed fails at once.
@pytest.mark.flaky(reruns=1, only_rerun=["stalled"])
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_two_workers_one_killed_mid_stream_end_as_the_batch(
    broker: EmbeddedBroker, readings: list[Any], tmp_path: Path, guarantee: str
) -> None:
    prefix = new_prefix()
    env = {"TARIFFSTREAM_STREAMS__PROCESSING_GUARANTEE": guarantee}
    first = start_worker(
        broker, prefix, tmp_path / "w1.log", tmp_path / "d1", None, env
    )
    second = start_worker(
        broker, prefix, tmp_path / "w2.log", tmp_path / "d2", None, env
    )
    try:
        topic = first.topic("meter-readings")
        messages = shuffled_with_duplicates(readings, seed=20130406)
        half = len(messages) // 2
        produce(broker.bootstrap, [(topic, k, v) for k, v in messages[:half]])
        deadline = time.monotonic() + 120
        while booked_readings(second.web_port) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert booked_readings(second.web_port) > 0, "second worker never got to work"
        second.kill()
        produce(broker.bootstrap, [(topic, k, v) for k, v in messages[half:]])
        # The embedded broker does not evict a dead member while a newcomer joins:
        # let its session timeout (10 s) pass first, as a supervisor's back-off would.
        time.sleep(12)
        second = second.restart()
        expected = batch_result(readings)
        customers = _wait_for_state(first, expected)
        if not _state_matches(customers, expected):
            left = unconsumed(broker.bootstrap, prefix.rstrip("."), topic)
            assert left == 0, f"stalled: {left} meter-readings messages unconsumed"
        assert_equal_to_batch(customers, expected)
        exactly_once = guarantee == "exactly_once"
        chains = _tier_chains(first, expected, committed_only=exactly_once)
        assert {c: chain[-1][1] for c, chain in chains.items()} == {
            c: r.tier for c, r in expected.items() if r.tier is not None
        }
        if exactly_once:
            # Each change starts from the last one's tier: no change was lost or
            # published twice across the kill (a repeat would start from the
            # tier before it).
            for customer_id, chain in chains.items():
                starts = [old for old, _new in chain]
                assert starts == [None] + [new for _old, new in chain[:-1]], (
                    customer_id,
                    chain,
                )
            # Late readings are set aside once each, not again by the worker
            # that took over the killed one's partitions.
            letters = first.topic("dead-letters")
            seen = collect(
                broker.bootstrap, [letters], lambda s: False, 5, committed_only=True
            )
            keys = [
                (d["topic"], d["partition"], d["offset"], d["reason"], d["field"])
                for d in seen[letters]
            ]
            assert keys, "the shuffled replay has late readings"
            assert len(keys) == len(set(keys))
    finally:
        first.stop()
        second.stop()


def _tier_chains(
    running: RunningWorker, expected: dict[str, Any], committed_only: bool
) -> dict[str, list[tuple[int | None, int | None]]]:
    """Each customer's tier changes as (old, new), in the order published."""
    changes = running.topic("tier-changes")
    seen = collect(
        running.broker.bootstrap,
        [changes],
        lambda s: False,
        timeout=5,
        committed_only=committed_only,
    )
    chains: dict[str, list[tuple[int | None, int | None]]] = {}
    for event in seen[changes]:
        if event["customer_id"] in expected:
            chains.setdefault(event["customer_id"], []).append(
                (event["old_tier"], event["new_tier"])
            )
    return chains


def test_a_restarted_worker_recovers_its_tables_from_the_changelogs(
    broker: EmbeddedBroker, readings: list[Any], tmp_path: Path
) -> None:
    prefix = new_prefix()
    one_customer = [r for r in readings if r.customer_id == "sgsc-10006414"]
    running = start_worker(broker, prefix, tmp_path / "w.log", tmp_path / "d")
    topic = running.topic("meter-readings")
    try:
        produce(
            broker.bootstrap,
            [(topic, k, v) for k, v, _ in encode_messages(one_customer, 48)],
        )
        expected = batch_result(one_customer)
        _wait_for_state(running, expected)
        running.stop()
        running = running.restart()
        # The same last day again and one new half-hour: only the new one counts,
        # which needs the recovered ledger and the recovered months.
        last = one_customer[-1]
        extra = type(last)(
            last.customer_id,
            last.meter_id,
            last.end_ms,
            last.end_ms + 1_800_000,
            1.5,
            "residential",
        )
        again = list(encode_messages([*one_customer[-48:], extra], 48))
        produce(broker.bootstrap, [(topic, k, v) for k, v, _ in again])
        expected_after = batch_result([*one_customer, extra])
        customers = _wait_for_state(running, expected_after)
        assert_equal_to_batch(customers, expected_after)
    finally:
        running.stop()


def _wait_for_state(
    worker: RunningWorker, expected: dict[str, Any]
) -> dict[bytes, Any]:
    deadline = time.monotonic() + 300
    while True:
        customers = read_customers(
            worker.broker.bootstrap, worker.changelog("customers")
        )
        if _state_matches(customers, expected) or time.monotonic() > deadline:
            return customers
        time.sleep(3)


def _state_matches(customers: dict[bytes, Any], expected: dict[str, Any]) -> bool:
    return all(
        c.encode() in customers
        and customers[c.encode()]["tier"] == expected[c].tier
        and _months_match(customers[c.encode()], expected[c])
        for c in expected
    )


def _months_match(state: dict[str, Any], report: Any) -> bool:
    by_label = {m.label: m.mwh for m in report.months}
    return (
        all(
            by_label.get(f"{int(m) // 12:04d}-{int(m) % 12 + 1:02d}") == v[0]
            for m, v in state["months"].items()
        )
        and len(state["months"]) > 0
    )
