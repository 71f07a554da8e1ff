"""The streaming subcommands of ``tariffstream``: broker, worker, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka.errors import KafkaError

from config import ConfigError, load_settings
from streams.broker import EmbeddedBroker, free_port
from streams.topology import INPUTS

__all__ = ["add_stream_commands"]

logger = logging.getLogger(__name__)


def add_stream_commands(commands: Any) -> None:
    broker = commands.add_parser(
        "broker", help="run the embedded broker in the foreground"
    )
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(handler=_broker)

    worker = commands.add_parser("worker", help="run a stream worker")
    worker.add_argument("--broker", help="kafka://host:port (or TARIFFSTREAM_BROKER)")
    worker.add_argument("--web-port", type=int)
    worker.add_argument("--data-dir")
    worker.add_argument("--config")
    worker.add_argument(
        "--embedded", action="store_true", help="the broker is the embedded one"
    )
    worker.add_argument(
        "--redis", help="redis://host:port/db (or TARIFFSTREAM_REDIS_URL)"
    )
    worker.add_argument(
        "--loglevel", default=os.environ.get("TARIFFSTREAM_LOGLEVEL", "warning")
    )
    worker.set_defaults(handler=_worker)

    from tariffstream.cli import add_csv_options

    replay = commands.add_parser("replay", help="publish readings from a CSV file")
    add_csv_options(replay)
    replay.add_argument("--broker", help="kafka://host:port (or TARIFFSTREAM_BROKER)")
    replay.add_argument("--rate", default="max", help="readings per second, or max")
    replay.add_argument(
        "--embedded", action="store_true", help="the broker is the embedded one"
    )
    replay.add_argument(
        "--block-size",
        type=int,
        default=48,
        help="values per message; 1 for single readings",
    )
    replay.set_defaults(handler=_replay)

    publish = commands.add_parser(
        "publish", help="publish JSON lines to an input topic (catalog, customers, ...)"
    )
    publish.add_argument("topic", choices=INPUTS)
    publish.add_argument("file", help="one JSON object per line; - for stdin")
    publish.add_argument("--broker", help="kafka://host:port (or TARIFFSTREAM_BROKER)")
    publish.add_argument(
        "--embedded", action="store_true", help="the broker is the embedded one"
    )
    publish.add_argument("--config")
    publish.set_defaults(handler=_publish)

    demo = commands.add_parser("demo", help="embedded broker, a worker and a demo feed")
    demo.add_argument("--web-port", type=int, default=6066)
    demo.add_argument("--customers", type=int, default=200)
    demo.add_argument(
        "--seconds-per-day", type=float, default=60 / 365, help="pace of event time"
    )
    demo.set_defaults(handler=_demo)


def _bootstrap(url: str) -> str:
    return url.split("://", 1)[-1]


def _broker(args: argparse.Namespace) -> int:
    with EmbeddedBroker(port=args.port) as broker:
        print(f"embedded broker on {broker.bootstrap} (memory only; Ctrl-C stops it)")
        print(f"workers: tariffstream worker --embedded --broker {broker.url}")
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        except KeyboardInterrupt:
            pass
    return 0


def _worker(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.broker:
        overrides["streams.broker"] = args.broker
    if args.embedded:
        overrides["streams.broker_flavour"] = "embedded"
    if args.redis:
        overrides["serving.redis_url"] = args.redis
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"tariffstream worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.loglevel.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from streams.worker import run_worker

    run_worker(
        settings,
        web_port=args.web_port,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        loglevel=args.loglevel,
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from streams.replay import encode_messages, produce
    from streams.topology import topic_name
    from tariffstream.cli import csv_options, settings_from_args
    from tariffstream.csvinput import (
        CsvFormatError,
        RowRejection,
        open_csv,
        read_readings,
    )

    try:
        settings = settings_from_args(args)
        if args.broker:
            settings = load_settings(
                args.config, overrides={"streams.broker": args.broker}
            )
        rate = None if args.rate == "max" else float(args.rate)
        readings = []
        with open_csv(args.file) as handle:
            for item in read_readings(handle, csv_options(args, settings)):
                if isinstance(item, RowRejection):
                    rejection = item.rejection
                    field = rejection.field or "-"
                    print(
                        f"line {item.line}: {rejection.reason} ({field})",
                        file=sys.stderr,
                    )
                else:
                    readings.append(item)
    except (ConfigError, CsvFormatError, ValueError) as exc:
        print(f"tariffstream replay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"tariffstream replay: cannot read {args.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    messages = list(encode_messages(readings, args.block_size))
    topic = topic_name(settings, "meter-readings")
    embedded = args.embedded or settings.streams.broker_flavour == "embedded"
    bootstrap = _bootstrap(settings.streams.broker)
    try:
        asyncio.run(produce(bootstrap, topic, messages, rate, embedded=embedded))
    except KafkaError as exc:
        print(
            f"tariffstream replay: broker {bootstrap} unusable ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 2
    return 0


# The id each input topic is keyed by, so one entity stays on one partition.
KEY_FIELDS = {
    "meter-readings": ("customer_id",),
    "customers": ("customer_id",),
    "switch-decisions": ("customer_id",),
    "package-events": ("package_id",),
    "campaign-commands": ("package_id",),
    "catalog": ("customer_type", "tier"),
}


def _publish(args: argparse.Namespace) -> int:
    from streams.replay import produce
    from streams.topology import topic_name

    overrides = {"streams.broker": args.broker} if args.broker else {}
    try:
        settings = load_settings(args.config, overrides=overrides)
        handle = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except ConfigError as exc:
        print(f"tariffstream publish: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"tariffstream publish: cannot read {args.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    messages = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            key = _key_of(line, KEY_FIELDS[args.topic])
            if key is None:
                fields = "+".join(KEY_FIELDS[args.topic])
                print(
                    f"line {number}: not a JSON object with {fields}", file=sys.stderr
                )
                continue
            messages.append((key, line.strip(), 1))
    embedded = args.embedded or settings.streams.broker_flavour == "embedded"
    bootstrap = _bootstrap(settings.streams.broker)
    topic = topic_name(settings, args.topic)
    try:
        asyncio.run(
            produce(bootstrap, topic, messages, None, progress=None, embedded=embedded)
        )
    except KafkaError as exc:
        print(
            f"tariffstream publish: broker {bootstrap} unusable ({type(exc).__name__})",
            file=sys.stderr,
        )
        return 2
    print(f"published {len(messages)} messages to {topic}")
    return 0


def _key_of(line: bytes, fields: tuple[str, ...]) -> bytes | None:
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or any(body.get(f) is None for f in fields):
        return None
    return ":".join(str(body[f]) for f in fields).encode()


def _demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return int(run_demo(args.web_port, args.customers, args.seconds_per_day))


def spawn_worker(
    broker_url: str,
    web_port: int,
    data_dir: Path,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    embedded: bool = True,
) -> subprocess.Popen[bytes]:
    """A worker process (for the demo and the tests)."""
    command = [
        sys.executable,
        "-m",
        "tariffstream.cli",
        "worker",
        *(["--embedded"] if embedded else []),
        "--broker",
        broker_url,
        "--web-port",
        str(web_port),
        "--data-dir",
        str(data_dir),
    ]
    if log is None:
        return subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
    with open(log, "ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
        process.wait()


__all__ += ["free_port", "spawn_worker", "stop_process"]
