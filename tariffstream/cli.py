"""The ``tariffstream`` command: offline analysis, the broker, workers, replay, demo."""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from config import ConfigError, Settings, load_settings
from models.decode import CUSTOMER_TYPES
from rules.timezones import parse_zone
from tariffstream.analyze import Report, analyze_readings
from tariffstream.csvinput import (
    CsvFormatError,
    CsvOptions,
    RowRejection,
    open_csv,
    parse_column_map,
    read_readings,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2


def add_csv_options(parser: argparse.ArgumentParser) -> None:
    """The column options ``analyze`` and ``replay`` share."""
    parser.add_argument("file", help="CSV file of interval or register readings")
    parser.add_argument(
        "--map", dest="column_map", help="rename columns: ours=theirs,..."
    )
    parser.add_argument(
        "--timezone", help="zone of timestamps without an offset (and of months)"
    )
    parser.add_argument("--customer-type", choices=sorted(CUSTOMER_TYPES))
    parser.add_argument(
        "--interval",
        type=float,
        metavar="MINUTES",
        help="interval length without an end column",
    )
    parser.add_argument(
        "--config", help="a TOML file overriding config/tariffstream.toml"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tariffstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    analyze = commands.add_parser(
        "analyze", help="run the consumption rules over a CSV file"
    )
    add_csv_options(analyze)
    analyze.add_argument("--json", action="store_true", help="print one JSON document")
    try:
        from streams.commands import add_stream_commands
    except ImportError:  # the streaming extras are optional for offline analysis
        pass
    else:
        add_stream_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "analyze":
        return _analyze(args)
    handler: Any = args.handler
    return int(handler(args))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings, with ``--timezone`` and ``--interval`` applied on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "timezone", None):
        overrides["time.timezone"] = args.timezone
    if getattr(args, "interval", None) is not None:
        if args.interval <= 0 or args.interval != int(args.interval):
            raise ConfigError(
                "--interval: expected a whole number of minutes > 0, "
                f"got {args.interval:g}"
            )
        overrides["readings.interval_minutes"] = int(args.interval)
    return load_settings(getattr(args, "config", None), overrides=overrides)


def csv_options(args: argparse.Namespace, settings: Settings) -> CsvOptions:
    return CsvOptions(
        zone=parse_zone(settings.timezone),
        interval_ms=settings.readings.interval_minutes * 60_000,
        customer_type=args.customer_type,
        column_map=parse_column_map(args.column_map),
    )


def _analyze(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        options = csv_options(args, settings)
        readings = []
        rejected: Counter[str] = Counter()
        with open_csv(args.file) as handle:
            for item in read_readings(handle, options):
                if isinstance(item, RowRejection):
                    rejected[item.rejection.reason] += 1
                    field = item.rejection.field or "-"
                    print(
                        f"line {item.line}: {item.rejection.reason} ({field})",
                        file=sys.stderr,
                    )
                else:
                    readings.append(item)
    except (ConfigError, CsvFormatError) as exc:
        print(f"tariffstream analyze: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError:
        print(f"tariffstream analyze: {args.file} is not UTF-8 text", file=sys.stderr)
        return EXIT_USAGE
    except csv.Error as exc:
        print(
            f"tariffstream analyze: {args.file} is not readable CSV ({exc})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as exc:
        print(
            f"tariffstream analyze: cannot read {args.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    report = analyze_readings(readings, settings)
    report.rejected.update(rejected)
    if args.json:
        sys.stdout.buffer.write(
            orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    else:
        print(_table(report))
    return EXIT_OK


def _table(report: Report) -> str:
    lines = []
    header = (
        f"  {'month':<8} {'kWh':>12} {'coverage':>9} {'closed':>7} {'counted':>8} "
        f"{'band':>5}"
    )
    for customer in report.customers:
        counts = customer.band_counts
        bands = f"{counts['1']}/{counts['2']}/{counts['3']}"
        lines.append(
            f"customer {customer.customer_id}  "
            f"type {customer.customer_type or 'unknown'}  "
            f"tier {customer.tier or '-'}  bands 1/2/3: {bands}"
        )
        lines.append(header)
        for m in customer.months:
            closed = "yes" if m.closed else "no"
            counted = "yes" if m.counted else "no"
            lines.append(
                f"  {m.label:<8} {m.kwh:>12.3f} {m.coverage:>9.3f} {closed:>7} "
                f"{counted:>8} {m.band or '-':>5}"
            )
        lines.append("")
    if report.rejected:
        rejected = ", ".join(
            f"{reason} {n}" for reason, n in sorted(report.rejected.items())
        )
        lines.append(f"rejected: {rejected}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
