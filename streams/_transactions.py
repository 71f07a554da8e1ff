"""Faust's Kafka transport with highwaters that hold under ``exactly_once``.

With ``processing_guarantee="exactly_once"`` faust 0.15.3 reads a changelog's
highwater from the consumer's cached last stable offset, which aiokafka only
knows once it has fetched from that partition. At a rebalance the cache is empty
for a newly assigned changelog partition: faust turns the missing value into -1
and stops the worker with ``ConsistencyError`` ("persisted offset ... is higher
than the last offset in that topic (highwater) (1280 > -1)").

Here the highwaters are asked of the broker (ListOffsets), with the consumer's
isolation level: under ``read_committed`` that is the last stable offset, the
value faust meant, and under ``read_uncommitted`` the end offset, as faust
already does.

The consumer also creates the app's topics before it joins the group (see
:class:`App`). Nothing else of faust's transport changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["App"]


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


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A faust App whose consumer transport is :class:`_Transport`.

    ``declare_first`` names the topics to create before the consumer group is
    joined, so the first assignment covers them all.
    """

    declare_first: Sequence[Any] = ()

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)
