"""Shared test helpers: settings built from the shipped defaults, instants."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from config import Settings, load_settings


def ms(iso: str) -> int:
    """Epoch milliseconds of an ISO-8601 instant with an offset."""
    moment = datetime.fromisoformat(iso)
    assert moment.tzinfo is not None, "test instants need an offset"
    return int(moment.timestamp() * 1000)


def make_settings(**overrides: Any) -> Settings:
    """Shipped defaults with dotted overrides, never the caller's environment."""
    return load_settings(env={}, overrides=overrides)
