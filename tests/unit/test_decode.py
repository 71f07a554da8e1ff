from __future__ import annotations

import orjson
import pytest

from models.decode import (
    decode_campaign_command,
    decode_catalog_entry,
    decode_customer,
    decode_meter_message,
    decode_package_event,
    decode_switch_decision,
)
from models.events import (
    CatalogEntry,
    IntervalBlock,
    IntervalReading,
    PackageEvent,
    RegisterReading,
    Rejection,
)
from tests.helpers import ms

HALF_HOUR = 1_800_000


def meter(body: object) -> object:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return decode_meter_message(raw, HALF_HOUR)


def test_interval_reading_with_offset_and_default_length() -> None:
    event = meter(
        {"customer_id": "c1", "start": "2024-01-31T23:30:00Z", "kwh": 0.5, "extra": 1}
    )
    assert event == IntervalReading(
        "c1",
        "c1",
        ms("2024-01-31T23:30:00+00:00"),
        ms("2024-02-01T00:00:00+00:00"),
        0.5,
    )


def test_epoch_milliseconds_are_accepted() -> None:
    event = meter(
        {
            "customer_id": "c1",
            "meter_id": "m",
            "start": 1_700_000_000_000,
            "end": 1_700_000_900_000,
            "kwh": "0.25",
        }
    )
    assert isinstance(event, IntervalReading)
    assert (event.end_ms - event.start_ms, event.kwh) == (900_000, 0.25)


def test_block_keeps_nulls_as_missing_intervals() -> None:
    event = meter(
        {
            "customer_id": "c1",
            "meter_id": "m",
            "start": "2024-03-01T00:00:00+10:00",
            "interval_minutes": 30,
            "values": [0.1, None, 0.3],
        }
    )
    assert isinstance(event, IntervalBlock)
    readings = event.expand()
    assert [r.start_ms - event.start_ms for r in readings] == [0, 2 * HALF_HOUR]
    assert [r.kwh for r in readings] == [0.1, 0.3]


def test_register_reading_with_declared_maximum() -> None:
    event = meter(
        {
            "customer_id": "c1",
            "meter_id": "r",
            "at": "2024-03-01T00:00:00Z",
            "register_kwh": 99_990,
            "register_max": 100_000,
        }
    )
    assert event == RegisterReading(
        "c1", "r", ms("2024-03-01T00:00:00+00:00"), 99_990, 100_000
    )


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{not json", "bad_json", None),
        (b"[1, 2]", "not_an_object", None),
        (
            b'{"start": "2024-01-01T00:00:00Z", "kwh": 1}',
            "missing_field",
            "customer_id",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "kwh": "NaN"}',
            "not_finite",
            "kwh",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "kwh": null}',
            "missing_field",
            "kwh",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "kwh": NaN}',
            "bad_json",
            None,
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "kwh": -0.1}',
            "negative_kwh",
            "kwh",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00", "kwh": 1}',
            "bad_timestamp",
            "start",
        ),
        (
            b'{"customer_id": "c", "start": "yesterday", "kwh": 1}',
            "bad_timestamp",
            "start",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "kwh": 1, "customer_type": "alien"}',
            "unknown_customer_type",
            "customer_type",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T01:00:00Z", "end": "2024-01-01T00:00:00Z", "kwh": 1}',
            "end_before_start",
            "end",
        ),
        (
            b'{"customer_id": "c", "meter_id": "r", "at": "2024-01-01T00:00:00Z", "register_kwh": "NaN"}',
            "not_finite",
            "register_kwh",
        ),
        (
            b'{"customer_id": "c", "meter_id": "r", "at": "2024-01-01T00:00:00Z", "register_kwh": null}',
            "missing_field",
            "register_kwh",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "values": [1, -2]}',
            "negative_kwh",
            "values[1]",
        ),
        (
            b'{"customer_id": "c", "start": "2024-01-01T00:00:00Z", "values": "1,2"}',
            "wrong_type",
            "values",
        ),
        (
            b'{"customer_id": true, "start": "2024-01-01T00:00:00Z", "kwh": 1}',
            "wrong_type",
            "customer_id",
        ),
    ],
)
def test_unusable_meter_messages_are_rejected_with_reason_and_field(
    body: bytes, reason: str, field: str | None
) -> None:
    rejection = meter(body)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (reason, field)


def test_customer_record_ignores_names_and_phones() -> None:
    record = decode_customer(
        orjson.dumps(
            {
                "customer_id": "c1",
                "customer_type": "residential",
                "name": "A. Person",
                "phone": "+61 400",
                "tier_on_record": 2,
            }
        )
    )
    assert not isinstance(record, Rejection)
    assert record.tier_on_record == 2
    assert "Person" not in repr(record)


def test_customer_record_with_unknown_type_or_zone_is_rejected() -> None:
    bad_type = decode_customer(b'{"customer_id": "c1", "customer_type": "industrial"}')
    bad_zone = decode_customer(
        b'{"customer_id": "c1", "customer_type": "primary", "timezone": "Nowhere/Else"}'
    )
    assert (
        isinstance(bad_type, Rejection) and bad_type.reason == "unknown_customer_type"
    )
    assert isinstance(bad_zone, Rejection) and (bad_zone.reason, bad_zone.field) == (
        "bad_value",
        "timezone",
    )


def test_catalog_package_and_decision_events_decode() -> None:
    assert decode_catalog_entry(
        b'{"op": "upsert", "customer_type": "primary", "tier": 1, "package_id": "P1"}'
    ) == CatalogEntry("upsert", "primary", 1, "P1")
    event = decode_package_event(
        b'{"package_id": "P1", "kind": "review", "good": true, "at": 0}'
    )
    assert event == PackageEvent("P1", "review", 0, True, None)
    review = decode_package_event(b'{"package_id": "P1", "kind": "review", "at": 0}')
    assert isinstance(review, Rejection) and review.field == "good"
    kind = decode_package_event(b'{"package_id": "P1", "kind": "like", "at": 0}')
    assert isinstance(kind, Rejection) and kind.reason == "unknown_kind"
    decision = decode_switch_decision(
        b'{"customer_id": "c", "recommendation_id": "c-r1", "decision": "maybe", "at": 0}'
    )
    assert isinstance(decision, Rejection) and (decision.reason, decision.field) == (
        "bad_value",
        "decision",
    )
    tier = decode_catalog_entry(
        b'{"op": "upsert", "customer_type": "primary", "tier": 4, "package_id": "P"}'
    )
    assert isinstance(tier, Rejection) and tier.field == "tier"
    command = decode_campaign_command(
        b'{"package_id": "P1", "command": "stop", "at": "2024-01-01T00:00:00+01:00"}'
    )
    assert not isinstance(command, Rejection) and command.at_ms == ms(
        "2023-12-31T23:00:00+00:00"
    )
