"""The package agent: package events and campaign commands in; heat changes,
marketing actions and campaign effects out.

Package counters are not idempotent by nature, so each package's table value
remembers the last offset applied from each source partition; a message
processed again after a crash is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from agents._io import Context
from models.decode import decode_campaign_command, decode_package_event
from models.events import CampaignEffect, HeatChange, MarketingAction
from rules.packages import PackageState, apply_campaign_command, apply_package_event
from serving.views import campaign_view, effect_alert, package_view

__all__ = ["handle_package_message", "register"]

logger = logging.getLogger(__name__)


def register(ctx: Context) -> None:
    topology = ctx.topology

    @topology.app.agent(topology.package_channel, name="packages")
    async def packages(stream: Any) -> None:
        async for event in stream.events():
            async with ctx.handling(event):
                try:
                    await handle_package_message(ctx, event.message)
                except Exception as error:  # the worker must go on
                    await ctx.internal_error(event.message, error)


async def handle_package_message(ctx: Context, message: Any) -> None:
    topic = ctx.short_topic(message.topic)
    ctx.metrics.messages.labels(topic=topic).inc()
    raw = message.value if isinstance(message.value, bytes) else b""
    decoded: Any = (
        decode_package_event(raw)
        if topic == "package-events"
        else decode_campaign_command(raw)
    )
    if not await ctx.usable(message, decoded, "package_id"):
        return
    table = ctx.topology.packages
    key = decoded.package_id.encode()
    stored = table.get(key)
    data = (
        orjson.loads(stored)
        if stored is not None
        else {"state": {"package_id": decoded.package_id}, "offsets": {}}
    )
    source = f"{message.topic}:{message.partition}"
    if data["offsets"].get(source, -1) >= message.offset:
        return  # already applied before a restart
    state = PackageState.from_json(data["state"])
    if topic == "package-events":
        outputs = apply_package_event(state, decoded, ctx.settings)
    else:
        outputs = apply_campaign_command(state, decoded, ctx.settings)
    data["state"] = state.to_json()
    data["offsets"][source] = message.offset
    table[key] = orjson.dumps(data)
    if ctx.read_model is not None:
        ctx.read_model.put_package(package_view(state, ctx.settings))
    ctx.processed(message, decoded.at_ms)
    for output in outputs:
        await _publish(ctx, output)


async def _publish(
    ctx: Context, output: HeatChange | MarketingAction | CampaignEffect
) -> None:
    if isinstance(output, HeatChange):
        ctx.metrics.heat_changes.labels(heat=output.new_heat).inc()
        await ctx.emit("package-heat", output.package_id, output.to_dict())
    elif isinstance(output, MarketingAction):
        ctx.metrics.marketing_changes.labels(
            level=str(output.new_level or "none")
        ).inc()
        await ctx.emit("marketing-actions", output.package_id, output.to_dict())
    else:
        if output.final:
            grade = (
                "ineffective"
                if output.ineffective
                else output.achieved_grade or "ungraded"
            )
            ctx.metrics.campaign_results.labels(grade=grade).inc()
        await ctx.emit("campaign-effects", output.package_id, output.to_dict())
        if ctx.read_model is not None:
            ctx.read_model.put_campaign(campaign_view(output))
            alert = effect_alert(output)
            if alert is not None:
                ctx.read_model.add_alert(alert)
