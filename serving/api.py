"""The HTTP API for user and management terminals, on the worker's web port.

Reads come from the Redis read model, so any worker answers for every customer.
The one write, a customer's decision on a recommendation, is published as a
switch decision and applied by whichever worker owns that customer.

- ``GET /api/customers/{id}``, ``/api/packages``, ``/api/packages/{id}``,
  ``/api/campaigns``, ``/api/alerts``: 200 with JSON, 404 when unknown, 503
  when the read model is off or Redis is unreachable.
- ``POST /api/recommendations/{id}/decision`` with ``{"decision":
  "accept"|"decline"}`` and ``Authorization: Bearer <token>``: 202 once
  published; 401 without a token, 403 with a wrong one or when no token is
  configured (writes are never open); 400 naming the field for a bad body.
- ``GET /healthz``: the process is alive. ``GET /readyz``: tables recovered,
  broker and Redis (when configured) reachable; 503 with the reasons otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

import orjson
from faust.web import Request, Response, View
from redis.exceptions import RedisError

from config import Settings
from models.decode import InputRejected, parse_instant
from serving.readmodel import ReadModel
from streams.topology import Topology

__all__ = ["register_api"]

logger = logging.getLogger(__name__)


def _customer_of(recommendation_id: str) -> str | None:
    customer, sep, number = recommendation_id.rpartition("-r")
    valid = sep and customer and number.isascii() and number.isdigit()
    return customer if valid else None


def register_api(
    topology: Topology, settings: Settings, read_model: ReadModel | None
) -> None:
    app = topology.app
    prefix = settings.streams.topic_prefix.rstrip(".:-_") or "tariffstream"

    async def fetch(view: View, key: str) -> Response:
        if read_model is None:
            return view.json(
                {"error": "read model is off (no redis configured)"}, status=503
            )
        try:
            raw = await read_model.redis.get(key)
        except (RedisError, OSError):
            return view.json({"error": "read model unreachable"}, status=503)
        if raw is None:
            return view.json({"error": "not found"}, status=404)
        return view.bytes(bytes(raw), content_type="application/json")

    async def listing(view: View, index: str, item: str, sorted_set: bool) -> Response:
        if read_model is None:
            return view.json(
                {"error": "read model is off (no redis configured)"}, status=503
            )
        try:
            redis = read_model.redis
            ids = await (
                redis.zrevrange(index, 0, 199) if sorted_set else redis.smembers(index)
            )
            ordered = list(ids) if sorted_set else sorted(ids)
            keys = [f"{prefix}:{item}:{i.decode()}" for i in ordered if i]
            values = await redis.mget(keys) if keys else []
        except (RedisError, OSError):
            return view.json({"error": "read model unreachable"}, status=503)
        body = b"[" + b",".join(bytes(v) for v in values if v is not None) + b"]"
        return view.bytes(body, content_type="application/json")

    class CustomerView(View):
        async def get(self, request: Request, customer_id: str) -> Response:
            return await fetch(self, f"{prefix}:customer:{customer_id}")

    class PackagesView(View):
        async def get(self, request: Request) -> Response:
            return await listing(
                self, f"{prefix}:packages", "package", sorted_set=False
            )

    class PackageView(View):
        async def get(self, request: Request, package_id: str) -> Response:
            return await fetch(self, f"{prefix}:package:{package_id}")

    class CampaignsView(View):
        async def get(self, request: Request) -> Response:
            return await listing(
                self, f"{prefix}:campaigns", "campaign", sorted_set=True
            )

    class AlertsView(View):
        async def get(self, request: Request) -> Response:
            if read_model is None:
                return self.json(
                    {"error": "read model is off (no redis configured)"}, status=503
                )
            try:
                members = await read_model.redis.zrevrange(f"{prefix}:alerts", 0, -1)
            except (RedisError, OSError):
                return self.json({"error": "read model unreachable"}, status=503)
            body = b"[" + b",".join(bytes(m) for m in members) + b"]"
            return self.bytes(body, content_type="application/json")

    class DecisionView(View):
        async def post(self, request: Request, recommendation_id: str) -> Response:
            denied = _authorize(self, request, settings.serving.api_token)
            if denied is not None:
                return denied
            customer = _customer_of(recommendation_id)
            if customer is None:
                return self.json(
                    {"error": "not a recommendation id", "field": "recommendation_id"},
                    status=400,
                )
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                return self.json(
                    {"error": "body is not JSON", "field": None}, status=400
                )
            if not isinstance(body, dict) or body.get("decision") not in (
                "accept",
                "decline",
            ):
                return self.json(
                    {"error": "expected accept or decline", "field": "decision"},
                    status=400,
                )
            at = body.get("at")
            if at is not None:
                try:
                    parse_instant(at, "at")
                except InputRejected:
                    return self.json(
                        {
                            "error": "expected epoch ms or ISO-8601 with an offset",
                            "field": "at",
                        },
                        status=400,
                    )
            # The decision's event time is when the customer made it: given by the
            # terminal, or the moment it reached us.
            event = {
                "customer_id": customer,
                "recommendation_id": recommendation_id,
                "decision": body["decision"],
                "at": at if at is not None else int(time.time() * 1000),
            }
            await topology.topics["switch-decisions"].send(
                key=customer.encode(), value=orjson.dumps(event)
            )
            return self.json({"status": "published", "decision": event}, status=202)

    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            problems = []
            recovery: Any = getattr(app.tables, "recovery", None)
            if recovery is None or not recovery.completed.is_set():
                problems.append("tables recovering")
            if not await _broker_reachable(settings.streams.broker):
                problems.append("broker unreachable")
            if read_model is not None and not await read_model.ping():
                problems.append("redis unreachable")
            status = 503 if problems else 200
            return self.json(
                {"ready": not problems, "problems": problems}, status=status
            )

    app.page("/api/customers/{customer_id}")(CustomerView)
    app.page("/api/packages")(PackagesView)
    app.page("/api/packages/{package_id}")(PackageView)
    app.page("/api/campaigns")(CampaignsView)
    app.page("/api/alerts")(AlertsView)
    app.page("/api/recommendations/{recommendation_id}/decision")(DecisionView)
    app.page("/healthz")(HealthView)
    app.page("/readyz")(ReadyView)


def _authorize(view: View, request: Request, token: str) -> Response | None:
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer ") or not given[7:].strip():
        return view.json({"error": "bearer token required"}, status=401)
    if not token:
        return view.json(
            {"error": "writes are disabled: no API token configured"}, status=403
        )
    try:
        presented = given[7:].strip().encode()
    except UnicodeEncodeError:
        return view.json({"error": "bearer token required"}, status=401)
    if not hmac.compare_digest(presented, token.encode()):
        return view.json({"error": "wrong token"}, status=403)
    return None


async def _broker_reachable(url: str) -> bool:
    host, _, port = url.split("://", 1)[-1].split(",")[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    except (OSError, ValueError, TimeoutError):
        return False
    writer.close()
    return True
