"""What every agent shares: table adapters, dead letters, sending outputs."""

from __future__ import annotations

import base64
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import orjson

from models.events import DeadLetter, Rejection
from serving.readmodel import ReadModel
from streams.metrics import Metrics
from streams.topology import Topology

__all__ = ["Context", "StagedLedger", "customer_key"]

logger = logging.getLogger(__name__)


def customer_key(customer_id: str) -> bytes:
    """The key of a customer's state in the customer table (ledger keys differ)."""
    return f"c|{customer_id}".encode()


class StagedLedger:
    """The ledger as one customer's message sees it, written only at the end.

    Ledger values share the customer table with the customer's state and are
    written just before it. Each value remembers the source offset that wrote
    it and what it held before (``{"o": offset, "v": value, "p": previous}``).
    If a worker died after writing ledger values but before the state, the state
    still says that offset was not applied, and the values read as they were
    before it; processing the message again then books it exactly once.
    """

    _DELETED = object()

    def __init__(self, table: Any, offset: int, applied: int) -> None:
        self.table = table
        self.offset = offset
        self.applied = applied
        self.staged: dict[str, Any] = {}
        self.before: dict[str, Any] = {}

    def _stored(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        if raw is None:
            return None
        wrapped = orjson.loads(raw)
        return wrapped["p"] if wrapped["o"] > self.applied else wrapped["v"]

    def get(self, key: str) -> Any:
        if key in self.staged:
            value = self.staged[key]
            return None if value is self._DELETED else value
        if key not in self.before:
            self.before[key] = self._stored(key)
        return self.before[key]

    def put(self, key: str, value: Any) -> None:
        self.get(key)
        self.staged[key] = value

    def delete(self, key: str) -> None:
        self.get(key)
        self.staged[key] = self._DELETED

    def commit(self) -> None:
        for key, value in self.staged.items():
            if value is self._DELETED:
                if key.encode() in self.table:
                    del self.table[key.encode()]
            else:
                wrapped = {"o": self.offset, "v": value, "p": self.before.get(key)}
                self.table[key.encode()] = orjson.dumps(wrapped)
        self.staged.clear()


class Context:
    """The topology and metrics an agent works with."""

    def __init__(
        self, topology: Topology, metrics: Metrics, read_model: ReadModel | None = None
    ) -> None:
        self.topology = topology
        self.settings = topology.settings
        self.metrics = metrics
        self.read_model = read_model

    async def emit(self, topic: str, key: str, body: dict[str, Any]) -> None:
        await self.topology.topics[topic].send(
            key=key.encode(), value=orjson.dumps(body)
        )

    async def dead_letter(self, message: Any, rejection: Rejection) -> None:
        """Send an unusable input, with its bytes and where it came from, aside."""
        raw: bytes = message.value if isinstance(message.value, bytes) else b""
        try:
            original, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            original, encoding = base64.b64encode(raw).decode("ascii"), "base64"
        letter = DeadLetter(
            message.topic,
            message.partition,
            message.offset,
            rejection.reason,
            rejection.field,
            rejection.detail,
            original,
            {"encoding": encoding, "count": rejection.count},
        )
        topic = self.short_topic(message.topic)
        self.metrics.dead_letters.labels(topic=topic, reason=rejection.reason).inc(
            rejection.count
        )
        logger.warning(
            "dead letter reason=%s field=%s topic=%s partition=%s offset=%s",
            rejection.reason,
            rejection.field,
            message.topic,
            message.partition,
            message.offset,
        )
        key = message.key if isinstance(message.key, bytes) else b""
        await self.topology.topics["dead-letters"].send(
            key=key, value=orjson.dumps(letter.to_dict())
        )

    def handling(self, event: Any) -> AbstractAsyncContextManager[None]:
        """Where an agent handles *event*: a commit under exactly-once waits
        until no event is half handled (``streams._transport.EventGate``)."""
        return cast(
            AbstractAsyncContextManager[None],
            self.topology.app.event_gate.handling(event),
        )

    async def internal_error(self, message: Any, error: Exception) -> None:
        """The last line of defence: a message the code could not handle is
        dead-lettered and counted, never lost; the exception's text is not kept,
        as it may echo the input."""
        logger.error(
            "internal error type=%s topic=%s partition=%s offset=%s",
            type(error).__name__,
            message.topic,
            message.partition,
            message.offset,
        )
        await self.dead_letter(
            message, Rejection("internal_error", None, type(error).__name__)
        )

    def processed(self, message: Any, event_time_ms: int | None) -> None:
        """Observe latency (producer timestamp to state update) and event-time lag.

        The wall clock is read here for the operators' metrics only; no rule sees it.
        """
        now = time.time()
        timestamp = getattr(message, "timestamp", None)
        if timestamp:
            self.metrics.latency.observe(max(now - timestamp, 0.0))
        if event_time_ms:
            topic = self.short_topic(message.topic)
            self.metrics.event_lag.labels(topic=topic).set(now - event_time_ms / 1000)

    async def usable(self, message: Any, decoded: Any, id_field: str) -> bool:
        """Whether a decoded input can be used; if not, it has gone to dead-letters.

        The message key must be the entity's id, or its state would live on
        another partition than the rest of that entity's events.
        """
        if isinstance(decoded, Rejection):
            await self.dead_letter(message, decoded)
            return False
        if (
            message.key is not None
            and message.key != getattr(decoded, id_field).encode()
        ):
            rejection = Rejection(
                "key_mismatch", id_field, f"message key must be the {id_field}"
            )
            await self.dead_letter(message, rejection)
            return False
        return True

    def short_topic(self, topic: str) -> str:
        """A topic name without the deployment's prefix, for labels and dispatch."""
        prefix = self.settings.streams.topic_prefix
        return topic[len(prefix) :] if topic.startswith(prefix) else topic
