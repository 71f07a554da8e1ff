"""The customer agent: readings, customer records and switch decisions in;
tier changes and recommendations out.

Idempotence: a reading is booked by identity in the ledger, a record is a plain
overwrite, a decision is remembered by its recommendation id, and outputs are
only published on a change of state, so a message processed again after a
crash changes nothing and publishes nothing new.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from agents._io import Context, StagedLedger, customer_key
from models.decode import decode_customer, decode_meter_message, decode_switch_decision
from models.events import (
    CatalogGap,
    IntervalBlock,
    PackageEvent,
    Recommendation,
    Rejection,
    TierChange,
)
from rules.consumption import CustomerState, book_meter_message
from rules.recommend import apply_customer_record, apply_decision, evaluate
from serving.views import catalog_gap_alert, customer_view

__all__ = ["handle_customer_message", "register"]

logger = logging.getLogger(__name__)


def register(ctx: Context, catalog: Any) -> None:
    topology = ctx.topology

    @topology.app.agent(topology.customer_channel, name="customers")
    async def customers(stream: Any) -> None:
        async for event in stream.events():
            async with ctx.handling(event):
                try:
                    await handle_customer_message(ctx, event.message, catalog)
                except Exception as error:  # the worker must go on
                    await ctx.internal_error(event.message, error)


def _load(ctx: Context, customer_id: str) -> CustomerState:
    raw = ctx.topology.customers.get(customer_key(customer_id))
    return (
        CustomerState(customer_id)
        if raw is None
        else CustomerState.from_json(orjson.loads(raw))
    )


def _save(ctx: Context, state: CustomerState) -> None:
    ctx.topology.customers[customer_key(state.customer_id)] = orjson.dumps(
        state.to_json()
    )


async def handle_customer_message(ctx: Context, message: Any, catalog: Any) -> None:
    topic = ctx.short_topic(message.topic)
    ctx.metrics.messages.labels(topic=topic).inc()
    raw = message.value if isinstance(message.value, bytes) else b""
    if topic == "meter-readings":
        decoded: Any = decode_meter_message(
            raw, ctx.settings.readings.interval_minutes * 60_000
        )
    elif topic == "customers":
        decoded = decode_customer(raw)
    else:
        decoded = decode_switch_decision(raw)
    if not await ctx.usable(message, decoded, "customer_id"):
        return
    state = _load(ctx, decoded.customer_id)
    source = f"{message.topic}:{message.partition}"
    applied = state.applied.get(source, -1)
    if message.offset <= applied:
        return  # applied before a restart: its effects are already in the state
    ledger = StagedLedger(ctx.topology.customers, message.offset, applied)
    if topic == "meter-readings":
        at_ms = await _book(ctx, message, state, decoded, ledger)
    elif topic == "customers":
        rejection = apply_customer_record(state, decoded)
        if rejection is not None:
            await ctx.dead_letter(message, rejection)
        at_ms = state.watermark_ms or 0
    else:
        at_ms = decoded.at_ms
        if not await _decide(ctx, message, state, decoded):
            return
    evaluation = evaluate(state, ctx.settings, catalog, at_ms)
    # Ledger first, state last: the state's applied offset marks the message done.
    state.applied[source] = message.offset
    ledger.commit()
    _save(ctx, state)
    if ctx.read_model is not None:
        ctx.read_model.put_customer(customer_view(state, ctx.settings))
    ctx.processed(message, at_ms)
    for output in evaluation.outputs():
        await _publish(ctx, output)


async def _book(
    ctx: Context, message: Any, state: CustomerState, reading: Any, ledger: StagedLedger
) -> int:
    booking = book_meter_message(state, reading, ledger, ctx.settings)
    for rejection in booking.rejections:
        await ctx.dead_letter(message, rejection)
    for _notice in booking.notices:
        ctx.metrics.suspect_readings.inc()
        await ctx.dead_letter(
            message,
            Rejection(
                "suspect_reading",
                "register_kwh",
                "register dropped without a declared maximum",
            ),
        )
    count = len(reading.values) if isinstance(reading, IntervalBlock) else 1
    ctx.metrics.readings.inc(count)
    return state.watermark_ms or 0


async def _decide(
    ctx: Context, message: Any, state: CustomerState, decision: Any
) -> bool:
    result = apply_decision(state, decision)
    if result.rejection is not None:
        await ctx.dead_letter(message, result.rejection)
        return False
    ctx.metrics.recommendations.labels(outcome=f"{decision.decision}ed").inc()
    for event in result.package_events:
        await _send_package_event(ctx, event)
    return True


async def _send_package_event(ctx: Context, event: PackageEvent) -> None:
    body = {
        "package_id": event.package_id,
        "kind": event.kind,
        "at": event.at_ms,
        "event_id": event.event_id,
    }
    await ctx.topology.topics["package-events"].send(
        key=event.package_id.encode(), value=orjson.dumps(body)
    )


async def _publish(
    ctx: Context, output: TierChange | Recommendation | CatalogGap
) -> None:
    if isinstance(output, TierChange):
        ctx.metrics.tier_changes.labels(
            customer_type=output.customer_type or "unknown",
            old_tier=str(output.old_tier or "none"),
            new_tier=str(output.new_tier or "none"),
        ).inc()
        await ctx.emit("tier-changes", output.customer_id, output.to_dict())
        if ctx.read_model is not None:
            ctx.read_model.mirror("tier-changes", output.to_dict())
    elif isinstance(output, Recommendation):
        ctx.metrics.recommendations.labels(outcome="sent").inc()
        await ctx.emit("recommendations", output.customer_id, output.to_dict())
        if ctx.read_model is not None:
            ctx.read_model.mirror("recommendations", output.to_dict())
    else:
        ctx.metrics.catalog_gaps.labels(
            customer_type=output.customer_type, tier=str(output.tier)
        ).inc()
        logger.warning(
            "catalog gap customer_type=%s tier=%s", output.customer_type, output.tier
        )
        if ctx.read_model is not None:
            ctx.read_model.add_alert(catalog_gap_alert(output))
