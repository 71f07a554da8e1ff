"""Fixtures for integration tests: an embedded Kafka-compatible broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(_ROOT))

from streams.broker import EmbeddedBroker, free_port  # noqa: E402
from streams.commands import spawn_worker, stop_process  # noqa: E402

BROKER_LANE = os.environ.get("TARIFFSTREAM_TEST_BROKER", "embedded")
EMBEDDED = BROKER_LANE != "kafka"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A Tansu broker on a free 127.0.0.1 port, shared by the whole session.

    Its output goes to ``broker.log`` in a session temp dir.  The broker keeps
    everything in memory, so tests should use topic names of their own.
    """
    log_path = tmp_path_factory.mktemp("broker") / "broker.log"
    if not EMBEDDED:
        if shutil.which("java") is None or shutil.which("mvn") is None:
            pytest.skip("the Apache Kafka lane needs java and mvn on PATH")
        from streams.kafka_local import LocalKafka

        with LocalKafka(log_path=log_path) as kafka:
            yield kafka  # type: ignore[misc]  # the same surface as EmbeddedBroker
        return
    with EmbeddedBroker(log_path=log_path) as started:
        yield started


@dataclass
class RunningWorker:
    broker: EmbeddedBroker
    prefix: str
    process: subprocess.Popen[bytes]
    log: Path
    web_port: int
    data_dir: Path
    extra_env: dict[str, str]

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def changelog(self, table: str) -> str:
        return f"{self.prefix.rstrip('.')}-{table}-changelog"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)

    def restart(self) -> RunningWorker:
        """A new process with the same identity, web port and data dir."""
        return start_worker(
            self.broker,
            self.prefix,
            self.log,
            self.data_dir,
            self.web_port,
            self.extra_env,
        )


def worker_env(prefix: str) -> dict[str, str]:
    env = {
        "TARIFFSTREAM_STREAMS__TOPIC_PREFIX": prefix,
        # memory:// unless TARIFFSTREAM_TEST_STORE names another (rocksdb://, the
        # production store, for a lane run on it).
        "TARIFFSTREAM_STREAMS__STORE": os.environ.get(
            "TARIFFSTREAM_TEST_STORE", "memory://"
        ),
        "TARIFFSTREAM_TIME__TIMEZONE": "+10:00",
        "TARIFFSTREAM_STREAMS__REPLICATION_FACTOR": "1",
    }
    if not EMBEDDED:
        # at_least_once (the product default, made exact by idempotent updates)
        # unless TARIFFSTREAM_TEST_GUARANTEE=exactly_once runs the session's
        # workers on transactions (.ci/run does both).
        env["TARIFFSTREAM_STREAMS__PROCESSING_GUARANTEE"] = os.environ.get(
            "TARIFFSTREAM_TEST_GUARANTEE", "at_least_once"
        )
        if "TARIFFSTREAM_TEST_STANDBY_REPLICAS" in os.environ:
            env["TARIFFSTREAM_STREAMS__STANDBY_REPLICAS"] = os.environ[
                "TARIFFSTREAM_TEST_STANDBY_REPLICAS"
            ]
    return env


def start_worker(
    broker: EmbeddedBroker,
    prefix: str,
    log: Path,
    data_dir: Path,
    web_port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunningWorker:
    port = web_port or free_port()
    env = {**worker_env(prefix), **(extra_env or {})}
    process = spawn_worker(
        broker.url, port, data_dir, env=env, log=log, embedded=EMBEDDED
    )
    return RunningWorker(broker, prefix, process, log, port, data_dir, extra_env or {})


def new_prefix() -> str:
    return f"it{uuid.uuid4().hex[:6]}."


@pytest.fixture(scope="session")
def worker(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    """One worker for the session, on topics of its own; tests use distinct ids."""
    home = tmp_path_factory.mktemp("worker")
    running = start_worker(broker, new_prefix(), home / "worker.log", home / "data")
    try:
        yield running
    finally:
        running.stop()


class RedisServer:
    """A real redis-server on a free 127.0.0.1 port, with an append-only file so
    that a restart keeps what was written, as a production Redis would."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.home),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5
                ) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
