"""The catalog agent: catalog entries into a global table every worker reads."""

from __future__ import annotations

from typing import Any

from agents._io import Context
from models.decode import decode_catalog_entry
from models.events import Rejection
from rules.recommend import catalog_key

__all__ = ["register"]


def register(ctx: Context) -> None:
    topology = ctx.topology

    @topology.app.agent(topology.topics["catalog"], name="catalog")
    async def catalog(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            ctx.metrics.messages.labels(topic="catalog").inc()
            entry = decode_catalog_entry(
                message.value if isinstance(message.value, bytes) else b""
            )
            if isinstance(entry, Rejection):
                await ctx.dead_letter(message, entry)
                continue
            key = catalog_key(entry.customer_type, entry.tier).encode()
            if entry.op == "delete":
                if key in topology.catalog:
                    del topology.catalog[key]
            elif entry.package_id is not None:
                topology.catalog[key] = entry.package_id.encode()
