"""Faust agents: thin loops that move events in and out of the rules."""

from __future__ import annotations

from agents import catalog, customers, packages
from agents._io import Context

__all__ = ["register_all"]


def register_all(ctx: Context) -> None:
    cache = catalog.register(ctx)
    customers.register(ctx, cache)
    packages.register(ctx)
