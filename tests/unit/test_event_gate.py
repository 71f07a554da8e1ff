"""The gate that keeps exactly-once commits between events."""

from __future__ import annotations

import asyncio

import pytest

from streams._transport import EventGate


class FakeEvent:
    """Below the seam: only ``ack`` is used, and faust's Event.ack is idempotent."""

    def __init__(self) -> None:
        self.acks = 0

    def ack(self) -> None:
        self.acks += 1


def test_a_commit_waits_for_the_event_in_hand_and_sees_it_acknowledged() -> None:
    async def scenario() -> list[str]:
        gate, log = EventGate(), []
        event = FakeEvent()
        release = asyncio.Event()

        async def agent() -> None:
            async with gate.handling(event):
                log.append("handling")
                await release.wait()  # e.g. awaiting a send
                log.append("handled")

        async def commit() -> None:
            async with gate.closed():
                log.append(f"commit acks={event.acks}")

        handler = asyncio.create_task(agent())
        await asyncio.sleep(0)
        committer = asyncio.create_task(commit())
        await asyncio.sleep(0.01)
        assert log == ["handling"]  # the commit has not run mid-event
        release.set()
        await asyncio.gather(handler, committer)
        return log

    assert asyncio.run(scenario()) == ["handling", "handled", "commit acks=1"]


def test_a_closed_gate_holds_the_next_event_until_the_commit_ends() -> None:
    async def scenario() -> list[str]:
        gate, log = EventGate(), []
        committing = asyncio.Event()
        finish = asyncio.Event()

        async def commit() -> None:
            async with gate.closed():
                committing.set()
                await finish.wait()
                log.append("committed")

        async def agent() -> None:
            await committing.wait()
            async with gate.handling(FakeEvent()):
                log.append("handled")

        tasks = [asyncio.create_task(commit()), asyncio.create_task(agent())]
        await asyncio.sleep(0.01)
        assert log == []
        finish.set()
        await asyncio.gather(*tasks)
        return log

    assert asyncio.run(scenario()) == ["committed", "handled"]


def test_an_event_whose_handling_raises_is_not_acknowledged() -> None:
    async def scenario() -> FakeEvent:
        gate, event = EventGate(), FakeEvent()
        with pytest.raises(RuntimeError):
            async with gate.handling(event):
                raise RuntimeError("boom")
        async with gate.closed():  # and the gate is idle again
            pass
        return event

    assert asyncio.run(scenario()).acks == 0
