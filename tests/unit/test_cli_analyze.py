"""``tariffstream analyze`` in-process on small CSV files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tariffstream.cli import main

JAN_2024_MS = 31 * 24 * 3600 * 1000
HALF_HOUR_MS = 30 * 60 * 1000


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """TARIFFSTREAM_* variables would override the defaults these tests rely on."""
    for name in list(os.environ):
        if name.startswith("TARIFFSTREAM_"):
            monkeypatch.delenv(name)
    yield


def _write(tmp_path: Path, text: str, name: str = "readings.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _run_json(
    capsys: pytest.CaptureFixture[str], *argv: str | Path
) -> tuple[dict[str, Any], str]:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    report: dict[str, Any] = orjson.loads(out)
    return report, err


def _months(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (c["customer_id"], m["month"]): m
        for c in report["customers"]
        for m in c["months"]
    }


# --- interval files ---------------------------------------------------------


def test_interval_file_books_kwh_to_the_month_of_each_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\n"
        "c1,2024-01-01T00:00:00Z,1.5\n"
        "c1,2024-01-31T23:30:00Z,0.25\n"
        "c1,2024-02-01T00:00:00Z,2\n"
        "c2,2024-01-15T12:00:00+00:00,0.125\n",
    )
    report, err = _run_json(capsys, path, "--interval", "30")
    assert err == ""
    months = _months(report)
    assert set(months) == {("c1", "2024-01"), ("c1", "2024-02"), ("c2", "2024-01")}
    assert months[("c1", "2024-01")]["kwh"] == pytest.approx(1.75)
    assert months[("c1", "2024-02")]["kwh"] == pytest.approx(2.0)
    assert months[("c2", "2024-01")]["kwh"] == pytest.approx(0.125)
    assert [c["customer_id"] for c in report["customers"]] == ["c1", "c2"]
    assert report["rejected"] == {}


def test_interval_option_sets_the_length_each_reading_covers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\nc1,2024-01-02T00:00:00Z,1\n",
    )
    half_hours, _ = _run_json(capsys, path, "--interval", "30")
    hours, _ = _run_json(capsys, path, "--interval", "60")
    covered = _months(half_hours)[("c1", "2024-01")]["coverage"]
    assert covered == pytest.approx(2 * HALF_HOUR_MS / JAN_2024_MS, abs=1e-6)
    doubled = _months(hours)[("c1", "2024-01")]["coverage"]
    assert doubled == pytest.approx(4 * HALF_HOUR_MS / JAN_2024_MS, abs=1e-6)


def test_interval_that_is_not_a_whole_number_of_minutes_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, out, err = _run(capsys, path, "--interval", "0.5")
    assert code == 2
    assert "--interval" in err
    assert out == ""


def test_interval_of_zero_minutes_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, _, err = _run(capsys, path, "--interval", "0")
    assert code == 2
    assert "--interval" in err


def test_timestamps_without_offset_are_read_in_the_timezone_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\n"
        "c1,2024-01-31 23:30:00,1\n"  # local +10:00: still January
        "c1,2024-01-31T14:00:00Z,2\n",  # 1 Feb 00:00 at +10:00
    )
    report, _ = _run_json(capsys, path, "--timezone", "+10:00")
    months = _months(report)
    assert months[("c1", "2024-01")]["kwh"] == pytest.approx(1.0)
    assert months[("c1", "2024-02")]["kwh"] == pytest.approx(2.0)


def test_map_renames_the_files_own_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "account,reading_datetime,general_supply_kwh\n"
        "c1,2024-03-01 00:00:00,0.5\n"
        "c1,2024-03-01 00:30:00,0.75\n",
    )
    report, err = _run_json(
        capsys,
        path,
        "--map",
        "customer_id=account, start=reading_datetime,kwh=general_supply_kwh",
        "--timezone",
        "+10:00",
        "--customer-type",
        "residential",
    )
    assert err == ""
    [customer] = report["customers"]
    assert customer["customer_id"] == "c1"
    assert customer["customer_type"] == "residential"
    assert _months(report)[("c1", "2024-03")]["kwh"] == pytest.approx(1.25)


def test_customer_type_column_wins_over_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh,customer_type\n"
        "c1,2024-01-01T00:00:00Z,1,tertiary\n"
        "c2,2024-01-01T00:00:00Z,1,\n",
    )
    report, _ = _run_json(capsys, path, "--customer-type", "residential")
    types = {c["customer_id"]: c["customer_type"] for c in report["customers"]}
    assert types == {"c1": "tertiary", "c2": "residential"}


# --- register files ---------------------------------------------------------


def test_register_file_books_differences_to_the_month_of_the_later_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,meter_id,at,register_kwh,register_max\n"
        "c1,m1,2024-01-01T00:00:00Z,100,\n"
        "c1,m1,2024-01-20T00:00:00Z,150,\n"
        "c1,m1,2024-02-05T00:00:00Z,990,1000\n"
        # a drop with a declared maximum is a rollover: 1000 - 990 + 10
        "c1,m1,2024-02-20T00:00:00Z,10,1000\n",
    )
    report, err = _run_json(capsys, path)
    assert err == ""
    months = _months(report)
    assert set(months) == {("c1", "2024-01"), ("c1", "2024-02")}
    assert months[("c1", "2024-01")]["kwh"] == pytest.approx(50.0)
    assert months[("c1", "2024-02")]["kwh"] == pytest.approx(840.0 + 20.0)
    assert report["rejected"] == {}


def test_register_file_in_any_order_gives_the_same_months(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = "customer_id,meter_id,at,register_kwh,register_max\n"
    rows = [
        "c1,m1,2024-01-01T00:00:00Z,100,\n",
        "c1,m1,2024-01-20T00:00:00Z,150,\n",
        "c1,m1,2024-02-05T00:00:00Z,400,\n",
    ]
    ordered, _ = _run_json(capsys, _write(tmp_path, header + "".join(rows), "a.csv"))
    shuffled, _ = _run_json(
        capsys, _write(tmp_path, header + "".join(reversed(rows)), "b.csv")
    )
    assert shuffled == ordered


def test_register_drop_without_maximum_is_not_booked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,meter_id,at,register_kwh\n"
        "c1,m1,2024-01-01T00:00:00Z,100\n"
        "c1,m1,2024-01-10T00:00:00Z,120\n"
        "c1,m1,2024-01-15T00:00:00Z,0\n"  # momentary zero
        "c1,m1,2024-01-20T00:00:00Z,130\n",
    )
    report, _ = _run_json(capsys, path)
    # 20 kWh, then 10 kWh from the last good reading: no spike from the zero
    assert _months(report)[("c1", "2024-01")]["kwh"] == pytest.approx(30.0)


# --- rejected rows ----------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason", "field"),
    [
        ("c1,2024-01-01T01:00:00Z,nan", "not_finite", "kwh"),
        ("c1,2024-01-01T01:00:00Z,NaN", "not_finite", "kwh"),
        ('c1,2024-01-01T01:00:00Z,"NaN"', "not_finite", "kwh"),
        ("c1,2024-01-01T01:00:00Z,inf", "not_finite", "kwh"),
        ("c1,2024-01-01T01:00:00Z,", "missing_field", "kwh"),
        ("c1,2024-01-01T01:00:00Z,  ", "missing_field", "kwh"),
        ("c1,2024-01-01T01:00:00Z,-0.5", "negative_kwh", "kwh"),
        ("c1,2024-01-01T01:00:00Z,lots", "wrong_type", "kwh"),
        ("c1,2024-13-01T01:00:00Z,1", "bad_timestamp", "start"),
        ("c1,yesterday,1", "bad_timestamp", "start"),
        ("c1,,1", "missing_field", "start"),
        (",2024-01-01T01:00:00Z,1", "missing_field", "customer_id"),
    ],
)
def test_bad_row_is_reported_by_line_and_counted_and_the_rest_is_booked(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    row: str,
    reason: str,
    field: str,
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\n"
        "c1,2024-01-01T00:00:00Z,1\n"
        f"{row}\n"
        "c1,2024-01-01T02:00:00Z,2\n",
    )
    report, err = _run_json(capsys, path)
    assert err == f"line 3: {reason} ({field})\n"
    assert report["rejected"] == {reason: 1}
    assert _months(report)[("c1", "2024-01")]["kwh"] == pytest.approx(3.0)


def test_several_bad_rows_are_each_reported_and_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\n"
        "c1,2024-01-01T00:00:00Z,NaN\n"
        "c1,2024-01-01T00:30:00Z,nan\n"
        "c1,2024-01-01T01:00:00Z,\n"
        "\n"  # a blank line is skipped, but still numbered
        "c1,2024-01-01T01:30:00Z,-1\n"
        "c1,not a time,1\n"
        "c1,2024-01-01T02:30:00Z,4\n",
    )
    code, out, err = _run(capsys, path, "--json")
    assert code == 0
    assert err.splitlines() == [
        "line 2: not_finite (kwh)",
        "line 3: not_finite (kwh)",
        "line 4: missing_field (kwh)",
        "line 6: negative_kwh (kwh)",
        "line 7: bad_timestamp (start)",
    ]
    report = orjson.loads(out)
    assert report["rejected"] == {
        "bad_timestamp": 1,
        "missing_field": 1,
        "negative_kwh": 1,
        "not_finite": 2,
    }
    assert list(report["rejected"]) == sorted(report["rejected"])
    assert _months(report)[("c1", "2024-01")]["kwh"] == pytest.approx(4.0)


def test_register_row_with_bad_value_is_reported_with_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,meter_id,at,register_kwh,register_max\n"
        "c1,m1,2024-01-01T00:00:00Z,100,\n"
        "c1,m1,2024-01-02T00:00:00Z,NaN,\n"
        "c1,,2024-01-03T00:00:00Z,120,\n"
        "c1,m1,2024-01-04T00:00:00Z,130,-5\n"
        "c1,m1,2024-01-05T25:00:00Z,140,\n",
    )
    report, err = _run_json(capsys, path)
    assert err.splitlines() == [
        "line 3: not_finite (register_kwh)",
        "line 4: missing_field (meter_id)",
        "line 5: negative_kwh (register_max)",
        "line 6: bad_timestamp (at)",
    ]
    assert report["rejected"] == {
        "bad_timestamp": 1,
        "missing_field": 1,
        "negative_kwh": 1,
        "not_finite": 1,
    }


def test_only_rejected_rows_give_a_report_without_customers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,-1\n")
    report, err = _run_json(capsys, path)
    assert report == {"customers": [], "rejected": {"negative_kwh": 1}}
    assert err == "line 2: negative_kwh (kwh)\n"


# --- the readable table -----------------------------------------------------


def test_table_output_names_the_customer_and_each_month(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "customer_id,start,kwh\n"
        "10006414,2024-01-05T00:00:00Z,1.5\n"
        "10006414,2024-02-05T00:00:00Z,2.5\n"
        "10006414,2024-02-06T00:00:00Z,-1\n",
    )
    code, out, err = _run(capsys, path, "--customer-type", "residential")
    assert code == 0
    assert "customer 10006414" in out
    assert "type residential" in out
    assert "2024-01" in out
    assert "2024-02" in out
    assert "rejected: negative_kwh 1" in out
    assert not out.lstrip().startswith("{")
    assert err == "line 4: negative_kwh (kwh)\n"


# --- usage errors -----------------------------------------------------------


def test_missing_file_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.csv"
    code, out, err = _run(capsys, missing, "--json")
    assert code == 2
    assert str(missing) in err
    assert out == ""


def test_file_missing_required_columns_exits_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,when,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, out, err = _run(capsys, path, "--json")
    assert code == 2
    assert "missing column(s) start" in err
    assert out == ""


def test_empty_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, _write(tmp_path, ""), "--json")
    assert code == 2
    assert "empty" in err
    assert out == ""


@pytest.mark.parametrize(
    "column_map",
    ["start", "start=", "=reading_datetime", "start=reading_datetime,kwh"],
)
def test_malformed_map_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], column_map: str
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, out, err = _run(capsys, path, "--map", column_map, "--json")
    assert code == 2
    assert "--map" in err
    assert out == ""


def test_map_to_a_column_the_file_lacks_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, out, err = _run(capsys, path, "--map", "start=reading_datetime", "--json")
    assert code == 2
    assert "reading_datetime" in err
    assert out == ""


def test_unknown_customer_type_is_an_argparse_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    with pytest.raises(SystemExit) as exited:
        main(["analyze", str(path), "--customer-type", "industrial"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert "--customer-type" in captured.err
    assert "industrial" in captured.err
    assert captured.out == ""


def test_unknown_timezone_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "customer_id,start,kwh\nc1,2024-01-01T00:00:00Z,1\n")
    code, out, _ = _run(capsys, path, "--timezone", "Mars/Olympus_Mons", "--json")
    assert code == 2
    assert out == ""
