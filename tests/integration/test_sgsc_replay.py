"""The SGSC file replayed out of order with duplicates equals the batch analysis."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from rules.timezones import parse_zone
from streams.replay import encode_messages
from tariffstream.analyze import analyze_readings
from tariffstream.csvinput import CsvOptions, RowRejection, open_csv, read_readings
from tests.helpers import make_settings
from tests.integration.conftest import RunningWorker
from tests.integration.kafka_io import collect, produce, read_table

pytestmark = [pytest.mark.integration, pytest.mark.data, pytest.mark.slow]

SGSC = Path(__file__).resolve().parents[3] / "shared" / "data" / "sgsc_smart_meter10_halfhourly.csv"


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
    assert not any(isinstance(r, RowRejection) for r in rows)
    # ids prefixed so this test's customers are its own on the shared worker
    return [type(r)(f"sgsc-{r.customer_id}", *(getattr(r, f) for f in r.__slots__[1:])) for r in rows]


def test_shuffled_replay_with_duplicates_equals_analyze(worker: RunningWorker, readings: list[Any]) -> None:
    rng = random.Random(20121007)
    blocks = list(encode_messages(readings, block_size=48))
    rng.shuffle(blocks)
    duplicates = list(encode_messages(rng.sample(readings, len(readings) // 20), block_size=1))
    messages = blocks + duplicates
    rng.shuffle(messages)
    topic = worker.topic("meter-readings")
    produce(worker.broker.bootstrap, [(topic, key, value) for key, value, _ in messages])

    batch = analyze_readings(readings, make_settings(**{"time.timezone": "+10:00"}))
    expected = {c.customer_id: c for c in batch.customers}
    customers = _wait_for_state(worker, expected)
    changes = worker.topic("tier-changes")
    seen = collect(worker.broker.bootstrap, [changes], lambda s: False, timeout=5)
    last_tier = {e["customer_id"]: e["new_tier"] for e in seen[changes] if e["customer_id"] in expected}
    assert last_tier == {c: r.tier for c, r in expected.items() if r.tier is not None}
    for customer_id, report in expected.items():
        state = customers[customer_id.encode()]
        assert state["tier"] == report.tier, customer_id
        by_label = {m.label: m.mwh for m in report.months}
        for month, (mwh, _cover) in state["months"].items():
            label = f"{int(month) // 12:04d}-{int(month) % 12 + 1:02d}"
            assert mwh == by_label[label], (customer_id, label)


def _wait_for_state(worker: RunningWorker, expected: dict[str, Any]) -> dict[bytes, Any]:
    import time

    deadline = time.monotonic() + 600
    while True:
        customers = read_table(worker.broker.bootstrap, worker.changelog("customers"))
        ready = [
            c for c in expected
            if c.encode() in customers and customers[c.encode()]["tier"] == expected[c].tier
            and _months_match(customers[c.encode()], expected[c])
        ]
        if len(ready) == len(expected) or time.monotonic() > deadline:
            return customers
        time.sleep(3)


def _months_match(state: dict[str, Any], report: Any) -> bool:
    by_label = {m.label: m.mwh for m in report.months}
    return all(
        by_label.get(f"{int(m) // 12:04d}-{int(m) % 12 + 1:02d}") == v[0] for m, v in state["months"].items()
    ) and len(state["months"]) > 0
