"""Bad input found by trying to break the product: each is refused with a reason."""

from __future__ import annotations

import orjson
import pytest

from models.decode import decode_customer, decode_meter_message
from models.events import Rejection
from rules.ledger import bucket_key, register_key

HALF_HOUR = 1_800_000


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (
            {"customer_id": "c", "start": "2024-01-01T00:00:00+10:00", "kwh": 1e308},
            "bad_value",
            "kwh",
        ),
        (
            {
                "customer_id": "c",
                "start": "2024-01-01T00:00:00+10:00",
                "values": [1, 1e300],
            },
            "bad_value",
            "values[1]",
        ),
        (
            {"customer_id": "c", "meter_id": "r", "at": 0, "register_kwh": 1e308},
            "bad_value",
            "register_kwh",
        ),
        (
            {
                "customer_id": "c",
                "meter_id": "r",
                "at": 0,
                "register_kwh": 1,
                "register_max": 1e308,
            },
            "bad_value",
            "register_max",
        ),
        (
            {"customer_id": "c", "start": "9999-12-31T00:00:00+00:00", "kwh": 1},
            "bad_timestamp",
            "start",
        ),
        ({"customer_id": "c", "start": 1e20, "kwh": 1}, "bad_timestamp", "start"),
        ({"customer_id": "c", "start": -1e15, "kwh": 1}, "bad_timestamp", "start"),
        (
            {
                "customer_id": "c",
                "start": 1704031200000,
                "interval_minutes": 1e12,
                "values": [1],
            },
            "bad_value",
            "interval_minutes",
        ),
        (
            {
                "customer_id": "c",
                "start": 1704031200000,
                "interval_minutes": 1e-6,
                "values": [1, 2],
            },
            "bad_value",
            "interval_minutes",
        ),
    ],
)
def test_out_of_range_numbers_and_instants_are_refused(
    body: dict[str, object], reason: str, field: str
) -> None:
    rejection = decode_meter_message(orjson.dumps(body), HALF_HOUR)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.field) == (reason, field)


@pytest.mark.parametrize("zone", ["Europe", "A" * 5000, "+10:99", "+\u0661\u0660:00"])
def test_odd_zone_names_are_refused_without_echoing_them(zone: str) -> None:
    rejection = decode_customer(
        orjson.dumps({"customer_id": "c", "customer_type": "primary", "timezone": zone})
    )
    assert isinstance(rejection, Rejection) and rejection.field == "timezone"
    assert zone not in rejection.detail


def test_ids_with_separators_never_share_a_ledger_key() -> None:
    assert bucket_key("a|b", "c", 1) != bucket_key("a", "b|c", 1)
    assert register_key("a|b", "c") != register_key("a", "b|c")


def test_a_staged_ledger_writes_nothing_until_committed() -> None:
    from agents._io import StagedLedger

    table: dict[bytes, bytes] = {b"k0": orjson.dumps({"o": 1, "v": [1], "p": None})}
    ledger = StagedLedger(table, offset=5, applied=4)
    ledger.put("k1", [2])
    ledger.delete("k0")
    assert ledger.get("k1") == [2] and ledger.get("k0") is None
    assert set(table) == {b"k0"}
    ledger.commit()
    assert table == {b"k1": orjson.dumps({"o": 5, "v": [2], "p": None})}


def test_ledger_values_written_by_an_unapplied_message_read_as_before_it() -> None:
    """A worker died after writing the ledger but before the customer state: the
    state says offset 5 was not applied, so offset 5's ledger writes are undone."""
    from agents._io import StagedLedger

    table = {b"k": orjson.dumps({"o": 5, "v": [1, 2], "p": [1]})}
    assert StagedLedger(table, offset=5, applied=4).get("k") == [1]
    assert StagedLedger(table, offset=6, applied=5).get("k") == [1, 2]


def test_analyze_reads_a_byte_order_mark_and_refuses_binary(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from tariffstream.cli import main

    folder = Path(str(tmp_path))
    bom = folder / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfcustomer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    assert main(["analyze", str(bom), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["customers"][0]["customer_id"] == "c1"
    binary = folder / "binary.csv"
    binary.write_bytes(b"customer_id,start,kwh\n\xff\xfe\x00garbage\n")
    assert main(["analyze", str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
