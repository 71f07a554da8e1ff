"""Output events against the JSON Schemas in ``schemas/`` (the output contracts).

``validate_output(topic, event)`` checks an event as it goes on the wire: the dict
is encoded with orjson (as the agents publish it) and decoded again before it is
validated, so tuples, non-string keys and the like are caught too.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from streams.topology import OUTPUTS

__all__ = ["OUTPUT_TOPICS", "SCHEMA_DIR", "load_schema", "validate_output"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

OUTPUT_TOPICS: tuple[str, ...] = OUTPUTS


@cache
def load_schema(topic: str) -> dict[str, Any]:
    """The parsed schema of an output topic (read once)."""
    if topic not in OUTPUT_TOPICS:
        raise AssertionError(
            f"{topic!r} is not an output topic; expected one of {list(OUTPUT_TOPICS)}"
        )
    path = SCHEMA_DIR / f"{topic}.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@cache
def _validator(topic: str) -> Draft202012Validator:
    schema = load_schema(topic)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _where(path: Any) -> str:
    parts = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return f"${parts}"


def validate_output(topic: str, event: dict[str, Any]) -> None:
    """Raise AssertionError naming each violation if ``event`` breaks the contract."""
    validator = _validator(topic)
    try:
        wire = orjson.loads(orjson.dumps(event))
    except TypeError as error:
        raise AssertionError(
            f"{topic} event cannot be encoded as JSON: {error}\n  event: {event!r}"
        ) from None
    errors = sorted(
        validator.iter_errors(wire), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if not errors:
        return
    lines = [
        f"  - at {_where(error.absolute_path)}: {error.message}" for error in errors
    ]
    raise AssertionError(
        f"{topic} event does not match {load_schema(topic)['$id']}:\n"
        + "\n".join(lines)
        + f"\n  event: {wire!r}"
    )
