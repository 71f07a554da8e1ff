"""A real Apache Kafka broker (KRaft, one node) run from Maven jars, no Docker.

The Apache Kafka test lane needs the genuine broker: transactions and
idempotent producers (``processing_guarantee="exactly_once"``), which the
embedded Tansu broker (:mod:`streams.broker`) refuses.  :class:`LocalKafka`
has the same surface as :class:`streams.broker.EmbeddedBroker`:

* the broker's jars are fetched once with Maven from ``scripts/kafka/pom.xml``
  into ``.cache/kafka/<version>/lib`` at the repository root (or under
  ``$TARIFFSTREAM_KAFKA_CACHE``) and reused afterwards;
* every start writes a KRaft ``server.properties`` (broker and controller in
  one process, both listeners on 127.0.0.1 only) into a fresh work directory,
  formats its storage and starts ``kafka.Kafka``; like the embedded broker, a
  fresh broker is an empty cluster;
* the broker is ready once it has answered a Kafka Metadata request, and
  stops with SIGTERM, then SIGKILL.

It needs ``java`` (17 or newer; ``$JAVA_HOME/bin/java`` wins) and, the first
time only, ``mvn`` with access to Maven Central.

Usage::

    with LocalKafka(log_path=Path("kafka.log")) as broker:
        app = faust.App("x", broker=broker.url, processing_guarantee="exactly_once")

From a shell: ``scripts/kafka-local [--port N]`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Self

from streams.broker import HOST, BrokerError, BrokerProcess, _answers_kafka, free_port

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "ensure_kafka_jars",
    "kafka_cache_dir",
    "main",
    "resolve_java",
]

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
"""The Apache Kafka release used; keep in step with ``scripts/kafka/pom.xml``."""

CACHE_ENV_VAR = "TARIFFSTREAM_KAFKA_CACHE"
"""Environment variable that may name another jar cache folder."""

REPO_ROOT = Path(__file__).resolve().parents[1]
POM_PATH = REPO_ROOT / "scripts" / "kafka" / "pom.xml"

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL_CLASS = "kafka.tools.StorageTool"
COMPLETE_MARKER = ".complete"
"""Written into a version's cache folder once all its jars were copied."""

LOG4J2_CONFIG = """\
# Written by streams/kafka_local.py: warnings and errors only, plus the lines
# that say the server started and stopped.
status = warn
name = tariffstream-kafka-local
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
logger.state.name = state.change.logger
logger.state.level = error
"""


def kafka_cache_dir() -> Path:
    """Return the folder that holds one ``<version>/lib`` folder per release."""
    explicit = os.environ.get(CACHE_ENV_VAR)
    if explicit:
        return Path(explicit)
    return REPO_ROOT / ".cache" / "kafka"


def resolve_java() -> str:
    """Return the ``java`` executable: ``$JAVA_HOME/bin/java``, else ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise BrokerError("no java on PATH (and no $JAVA_HOME/bin/java)")
    return found


def ensure_kafka_jars(
    version: str = KAFKA_VERSION,
    *,
    cache_dir: Path | None = None,
    pom: Path = POM_PATH,
    timeout: float = 900.0,
) -> Path:
    """Return the folder holding the broker's jars, fetching them if needed.

    The first call runs ``mvn dependency:copy-dependencies`` on *pom* (with
    ``-Dkafka.version=<version>``) into a scratch folder that is renamed to
    ``<cache>/<version>/lib`` once complete; later calls only check for it.
    A file lock keeps two processes from fetching at the same time.

    Raises:
        BrokerError: ``mvn`` is missing, fails or takes longer than *timeout*.
    """
    root = (cache_dir or kafka_cache_dir()) / version
    lib = root / "lib"
    if (root / COMPLETE_MARKER).is_file():
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / COMPLETE_MARKER).is_file():  # another process fetched them
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"Kafka {version} jars are not in {lib} and there is no mvn on "
                "PATH to fetch them"
            )
        scratch = Path(tempfile.mkdtemp(prefix="lib.", dir=root))
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={scratch}",
        ]
        logger.info("fetching Kafka %s jars into %s", version, lib)
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise BrokerError(
                    f"{' '.join(argv)} exited with code {done.returncode}:\n"
                    f"{_tail(done.stdout + done.stderr)}"
                )
            if not any(scratch.glob("kafka_2.13-*.jar")):
                raise BrokerError(f"mvn copied no kafka_2.13 jar into {scratch}")
            shutil.rmtree(lib, ignore_errors=True)
            scratch.chmod(0o755)  # mkdtemp made it private
            scratch.rename(lib)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"fetching Kafka {version} jars took longer than {timeout:.0f}s"
            ) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (root / COMPLETE_MARKER).write_text(version + "\n")
        logger.info(
            "fetched %d Kafka %s jars in %.1fs",
            len(list(lib.glob("*.jar"))),
            version,
            time.monotonic() - started,
        )
    return lib


def new_cluster_id() -> str:
    """Return a random KRaft cluster id (a UUID, base64url without padding)."""
    while True:
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()
        cluster_id = raw.rstrip("=")
        if not cluster_id.startswith("-"):  # would read as an option
            return cluster_id


def _tail(text: str, lines: int = 30) -> str:
    """Return the last *lines* lines of *text*."""
    return "\n".join(text.strip().splitlines()[-lines:])


class LocalKafka(BrokerProcess):
    """An Apache Kafka broker (KRaft, one node) as a child process on 127.0.0.1.

    The broker is started by :meth:`start` (or on entering a ``with`` block)
    and is ready once it has answered a Kafka Metadata request.  Its output
    goes to *log_path* (appended), by default ``server.log`` in the work
    directory.  A work directory that this object created is removed again
    by :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        work_dir: Path | None = None,
        version: str = KAFKA_VERSION,
        cache_dir: Path | None = None,
        heap: str = "512m",
        start_timeout: float = 90.0,
        stop_timeout: float = 20.0,
    ) -> None:
        """Describe a broker; nothing is fetched or started until :meth:`start`.

        Args:
            port: client (PLAINTEXT) port; a free one is chosen when None.
            log_path: file that receives the broker's stdout and stderr.
            work_dir: folder for the config and the data, emptied of earlier
                data at start; a temporary one when None.
            version: Apache Kafka release, served by Maven Central.
            cache_dir: jar cache; see :func:`kafka_cache_dir`.
            heap: the JVM's ``-Xmx``.
            start_timeout: seconds to wait for the broker to answer.
            stop_timeout: seconds to wait after SIGTERM before SIGKILL.
        """
        self.port = port if port is not None else free_port()
        self.controller_port: int | None = None
        self.log_path = log_path
        self.work_dir = work_dir
        self.version = version
        self.cache_dir = cache_dir
        self.heap = heap
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._own_work_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def server_properties(self, data_dir: Path) -> str:
        """Return the broker's ``server.properties`` text."""
        if self.controller_port is None:
            self.controller_port = free_port()
        controller = f"{HOST}:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,"
            "CONTROLLER:PLAINTEXT",
            "log.dirs": str(data_dir),
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        lines = ["# Written by streams/kafka_local.py; rewritten at every start."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _java(self, lib: Path, log4j: Path, *args: str) -> list[str]:
        """Return a ``java`` argv with the broker's classpath and log config."""
        return [
            resolve_java(),
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{lib}/*",
            *args,
        ]

    def _prepare(self) -> tuple[Path, list[str]]:
        """Fetch jars, write config, format storage; return log path and argv."""
        lib = ensure_kafka_jars(self.version, cache_dir=self.cache_dir)
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="tariffstream-kafka-"))
            self._own_work_dir = True
        work = self.work_dir
        data = work / "data"
        shutil.rmtree(data, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        config = work / "server.properties"
        config.write_text(self.server_properties(data))
        log4j = work / "log4j2.properties"
        log4j.write_text(LOG4J2_CONFIG)
        fmt = self._java(
            lib,
            log4j,
            STORAGE_TOOL_CLASS,
            "format",
            "--standalone",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(config),
        )
        started = time.monotonic()
        done = subprocess.run(
            fmt,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed (code {done.returncode}):\n"
                f"{_tail(done.stdout + done.stderr)}"
            )
        logger.debug("formatted %s in %.2fs", data, time.monotonic() - started)
        log_path = self.log_path or work / "server.log"
        return log_path, self._java(lib, log4j, MAIN_CLASS, str(config))

    def start(self) -> Self:
        """Start the broker and wait until it answers Kafka requests.

        Raises:
            BrokerError: no java, the jars could not be fetched, the process
                exited or it did not answer in time.
        """
        if self.running:
            return self
        started = time.monotonic()
        try:
            log_path, argv = self._prepare()
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_path.open("ab")
            logger.info("starting Kafka %s on %s", self.version, self.bootstrap)
            logger.debug("broker argv: %s", " ".join(argv))
            self._proc = subprocess.Popen(
                argv,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._wait_ready(started, log_path)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "Kafka %s ready in %.2fs (pid %d)",
            self.bootstrap,
            time.monotonic() - started,
            self._proc.pid,
        )
        return self

    def _wait_ready(self, started: float, log_path: Path) -> None:
        """Poll until the broker answers, it dies, or the timeout passes."""
        assert self._proc is not None
        deadline = started + self.start_timeout
        delay = 0.1
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"Kafka on {self.bootstrap} exited with code {code}; "
                    f"the end of {log_path}:\n{self._log_tail(log_path)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"Kafka on {self.bootstrap} did not answer within "
                    f"{self.start_timeout:.1f}s; see {log_path}"
                )
            if _answers_kafka(self.bootstrap, min(5.0, max(remaining, 0.1))):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    @staticmethod
    def _log_tail(log_path: Path) -> str:
        """Return the end of the broker's log, or a note that it is unreadable."""
        try:
            return _tail(log_path.read_text(errors="replace"))
        except OSError as exc:
            return f"(cannot read it: {exc})"

    def _after_stop(self) -> None:
        """Remove a work directory that this object created."""
        if self._own_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
            self._own_work_dir = False

    def __repr__(self) -> str:
        """Show the version, the address and whether the broker runs."""
        state = "running" if self.running else "stopped"
        return f"<LocalKafka {self.version} {self.bootstrap} {state}>"


class _Interrupted(BaseException):
    """Raised in :func:`main` by the first SIGINT or SIGTERM."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Turn the first SIGINT/SIGTERM into :class:`_Interrupted`; ignore more."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a broker in the foreground until Ctrl-C or SIGTERM.

    Prints the bootstrap address (``127.0.0.1:PORT``) on stdout once the
    broker accepts connections; progress goes to stderr.  Exit code 0 after a
    signal, 1 when the broker could not start or died.
    """
    parser = argparse.ArgumentParser(
        prog="kafka-local",
        description="Run an Apache Kafka broker (KRaft) on 127.0.0.1 until "
        "Ctrl-C. The jars are fetched with Maven the first time.",
    )
    parser.add_argument("--port", type=int, default=None, help="client port")
    parser.add_argument("--log", type=Path, default=None, help="broker log file")
    parser.add_argument("--work-dir", type=Path, default=None, help="data folder")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    broker = LocalKafka(args.port, log_path=args.log, work_dir=args.work_dir)
    previous = {
        sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        broker.start()
        print(broker.bootstrap, flush=True)
        while broker.running:
            time.sleep(0.5)
        logger.error("Kafka %s exited on its own", broker.bootstrap)
        return 1
    except _Interrupted:
        logger.info("signal received; stopping")
        return 0
    except BrokerError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
