"""Faust's Kafka transport, with transactions that hold under ``exactly_once``.

faust 0.15.3 keeps one transactional producer per partition (transactional id
``{app}-{group}-{partition}``, so the next owner of a partition fences the last
one), and that part is kept. What it gets wrong, and this module mends:

* **Which transaction a record joins.** faust picks it by the partition the
  record is *sent to*. A record sent to another partition than the one its
  input came from (a package event from the customer agent, a dead letter, an
  output keyed otherwise) joined a transaction that commits only when *that*
  partition's input moves on, or that another worker owns. Here a record joins
  the transaction of the input partition being processed
  (:func:`faust.current_event`); a changelog record joins its own partition's,
  which is its input's (tables are co-partitioned). A record sent outside any
  event (a timer) is not part of any input's processing and goes through the
  plain producer.
* **What a commit holds.** Table writes wait in faust's producer buffer, which
  faust did not drain before committing: a commit could carry the input
  offsets without the changelog records they produced, and a crash then lost
  readings. Here a commit first waits for every buffered record to be written
  (:class:`_Producer`), and no event is half handled when it does
  (:class:`EventGate`, closed before faust reads the acknowledged offsets).
  A send that fails is remembered: no later commit goes ahead.
* **Rebalances.** faust forgets the acknowledged offsets of revoked
  partitions before anything commits them, and left transactions open across
  a rebalance, so a partition the worker kept went on in a transaction begun
  under the old assignment. Here the acknowledged offsets are committed first,
  every transaction is ended when partitions are revoked, and begun again for
  the new assignment.
* **Highwaters.** faust read a changelog's highwater from the consumer's
  cached last stable offset, unknown for a partition just assigned: it turned
  the missing value into -1 and stopped with ``ConsistencyError``. Here the
  broker is asked (ListOffsets, with the consumer's isolation level).

A commit that fails stops the worker: its tables in memory would be ahead of
the changelog, and a restart rebuilds them from what was committed.

The consumer also creates the app's topics before it joins the group (see
:class:`App`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import faust
from aiokafka.producer.transaction_manager import TransactionState
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["App", "EventGate"]

logger = logging.getLogger(__name__)


class EventGate:
    """Keeps commits between events.

    Agents handle each event inside :meth:`handling`; :meth:`closed` waits until
    no event is being handled and holds new ones back until it exits. Under
    ``exactly_once`` the consumer commits with the gate closed, from before it
    reads the acknowledged offsets, so a transaction never holds an event's
    records without its offset.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = asyncio.Event()
        self._open.set()

    @asynccontextmanager
    async def handling(self, event: Any) -> AsyncIterator[None]:
        """Handle *event*; it is acknowledged as done before the gate can close."""
        while not self._open.is_set():  # a commit may follow a commit
            await self._open.wait()
        self._busy += 1
        self._idle.clear()
        try:
            yield
            event.ack()
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    @asynccontextmanager
    async def closed(self) -> AsyncIterator[None]:
        self._open.clear()
        try:
            await self._idle.wait()
            yield
        finally:
            self._open.set()


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        return cast(Mapping[TP, int], await consumer.end_offsets(partitions))

    def highwater(self, tp: TP) -> int:
        # The cached stable offset is None until the first fetch of *tp*; the
        # end offset is the best known figure for lag until then.
        consumer = self._ensure_consumer()
        if self.consumer.in_transaction:
            stable = consumer.last_stable_offset(tp)
            if stable is not None:
                return cast(int, stable)
        return cast(int, consumer.highwater(tp))


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_start(self) -> None:
        # The producer, an earlier service of the app, has started; the group
        # is not joined yet. A topic created after the first assignment was
        # left out of it ("Ignoring missing topic") and not read for minutes.
        for topic in cast(App, self.app).declare_first:
            await topic.maybe_declare()
        await super().on_start()

    async def force_commit(
        self, topics: Any = None, start_new_transaction: bool = True
    ) -> bool:
        if not self.in_transaction:
            return cast(bool, await super().force_commit(topics, start_new_transaction))
        # Closed before faust reads the acknowledged offsets: an event handled
        # meanwhile would put records in the transaction without its offset.
        async with cast(App, self.app).event_gate.closed():
            return cast(bool, await super().force_commit(topics, start_new_transaction))

    async def commit_all(self, start_new_transaction: bool = True) -> None:
        """Commit every acknowledged offset, after any commit in progress."""
        while self._commit_fut is not None:
            await self.maybe_wait_for_commit_to_finish()
        await self.commit(start_new_transaction=start_new_transaction)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # faust forgets the acknowledgements of revoked partitions first thing;
        # under transactions their records would then commit without their
        # offsets and be produced again. Commit them before. (With eager
        # rebalancing every assigned partition is revoked.)
        if self.in_transaction and self.assignment():
            await self.commit_all()
        await super().on_partitions_revoked(revoked)


class _Producer(faust_aiokafka.Producer):
    """Remembers transactional records until they are written, and any failure."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._unwritten: set[asyncio.Future[Any]] = set()
        self.send_error: BaseException | None = None

    def track(self, fut: asyncio.Future[Any]) -> None:
        self._unwritten.add(fut)
        fut.add_done_callback(self._written)

    def _written(self, fut: asyncio.Future[Any]) -> None:
        self._unwritten.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            self.send_error = self.send_error or fut.exception()

    def send_soon(self, fut: Any) -> None:
        # Table writes: published later by faust's buffer task.
        self.track(fut)
        super().send_soon(fut)

    async def written(self) -> None:
        """Wait until every tracked record so far is written; raise if one
        ever failed (a failure is not forgotten: its transaction lost it)."""
        while self._unwritten:
            await asyncio.gather(*list(self._unwritten), return_exceptions=True)
        if self.send_error is not None:
            raise self.send_error


class _TransactionManager(TransactionManager):
    def _tid(self, topic: str, partition: int) -> str:
        group = self.app.assignor.group_for_topic(topic)
        return f"{self.app.conf.id}-{group}-{partition}"

    def _changelogs(self) -> set[str]:
        names: set[str] | None = getattr(self, "_changelog_names", None)
        if names is None:
            names = {
                t.changelog_topic.get_topic_name() for t in self.app.tables.values()
            }
            self._changelog_names = names
        return names

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        producer = cast(_Producer, self.producer)
        if topic in self._changelogs():
            # A table write: its partition is the one of the event that made it.
            p = self.consumer.key_partition(topic, key, partition)
            tid = self._tid(topic, cast(int, p))
        else:
            event = faust.current_event()
            if event is None:
                return await producer.send(
                    topic, key, value, partition, timestamp, headers
                )
            p, tid = partition, self._tid(event.message.topic, event.message.partition)
        try:
            fut = cast(
                "asyncio.Future[Any]",
                await producer.send(
                    topic, key, value, p, timestamp, headers, transactional_id=tid
                ),
            )
        except Exception as error:
            # Raising here would end faust's buffer task and hang the next
            # commit; a failed future fails the commit instead.
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(error)
        producer.track(fut)
        return fut

    async def commit(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Commit *offsets* with the records of the events they cover.

        The consumer has closed the event gate: no event is half handled.
        """
        by_tid: dict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            by_tid[self._tid(tp.topic, tp.partition)][tp] = offset
        if not by_tid:
            return True
        try:
            await cast(_Producer, self.producer).written()
            await self._commit(by_tid, start_new_transaction)
        except Exception as error:
            await self._fail(error)
            return False
        return True

    async def _fail(self, error: BaseException) -> None:
        # No later commit may carry offsets past the lost records: written()
        # keeps raising, and the worker stops. A restart (this worker's or
        # the partitions' next owner's) resumes from what was committed.
        logger.error(
            "transaction commit failed, stopping the worker; the partitions "
            "resume from the last committed transaction error=%r",
            error,
        )
        producer = cast(_Producer, self.producer)
        producer.send_error = producer.send_error or error
        await self.app.crash(error)

    async def _commit(
        self, by_tid: Mapping[str, Mapping[TP, int]], start_new: bool
    ) -> None:
        producer = cast(_Producer, self.producer)
        group_id = self.app.conf.id
        for tid, offsets in by_tid.items():
            txn = producer._transaction_producers.get(tid)
            if txn is None or txn._txn_manager.state == TransactionState.READY:
                # Between the end of the transactions at a revocation and the
                # new assignment: nothing was handled since, so nothing is lost.
                logger.info("commit skipped, no open transaction id=%s", tid)
                continue
            state = txn._txn_manager.state
            if state != TransactionState.IN_TRANSACTION:
                raise RuntimeError(f"transaction {tid} is in state {state.name}")
            async with producer._trn_locks[tid]:
                await txn.send_offsets_to_transaction(offsets, group_id)
                await txn.commit_transaction()
                if start_new:
                    await txn.begin_transaction()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what was handled, then end every transaction.

        Called after faust has let the agents finish their current events. A
        transaction left without offsets is committed, not aborted: its records
        are already in the tables in memory, so they must reach the changelog.
        """
        producer = cast(_Producer, self.producer)
        if producer.send_error is not None:
            return  # the worker is stopping; nothing more may commit
        try:
            await cast(_Consumer, self.consumer).commit_all(start_new_transaction=False)
            await producer.written()
            for tid, txn in list(producer._transaction_producers.items()):
                if txn._txn_manager.is_in_transaction():
                    async with producer._trn_locks[tid]:
                        await txn.commit_transaction()
        except Exception as error:
            await self._fail(error)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        # faust's begin logs a failure and goes on; a partition without its
        # transaction must not be processed, so a failure here stops the worker.
        producer = cast(_Producer, self.producer)
        wanted = self._tps_to_transactional_ids(assigned)
        for tid in sorted(set(producer._transaction_producers) - wanted):
            await producer.stop_transaction(tid)
        for tid in sorted(wanted):
            txn = producer._transaction_producers.get(tid)
            if txn is None:
                txn = producer._new_producer(transactional_id=tid)
                await txn.start()  # fences the partition's last owner
                producer._transaction_producers[tid] = txn
                producer._trn_locks[tid] = asyncio.Lock()
            if not txn._txn_manager.is_in_transaction():
                await txn.begin_transaction()


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer
    TransactionManager = _TransactionManager


class App(faust.App):
    """A faust App on :class:`_Transport`, for its consumer and its producer.

    ``declare_first`` names the topics to create before the consumer group is
    joined, so the first assignment covers them all. ``event_gate`` is the
    :class:`EventGate` the agents handle their events in.
    """

    declare_first: Sequence[Any] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.event_gate = EventGate()

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)
