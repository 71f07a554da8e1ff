"""The control-room page in headless Chromium, against a real worker process.

One page stays open (Chrome DevTools protocol) while more events are fed: its
figures must change without a reload, by server-sent events. ``--dump-dom`` and
``--screenshot`` runs check what a fresh page shows at two moments.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from streams.broker import EmbeddedBroker
from tests.integration.conftest import RunningWorker, new_prefix, start_worker
from tests.integration.kafka_io import produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = 86_400_000
BASE = 1_704_031_200_000  # 2024-01-01T00:00:00+10:00
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What the open page shows, read in the page itself.
READ_PAGE = """JSON.stringify({
  marker: window.__controlRoomMarker || null,
  updates: Number(document.body.dataset.sseUpdates),
  navigations: performance.getEntriesByType('navigation').length,
  tiers: Array.from(document.querySelectorAll('#tier-table tbody tr'))
    .map(tr => Array.from(tr.cells).map(td => td.textContent)),
  packages: document.querySelector('#package-table tbody').textContent,
  effects: document.querySelector('#effect-table').innerHTML,
  workers: document.getElementById('worker-count').textContent,
})"""


def body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def customer_messages(
    prefix: str, customer: str, kwh_per_day: float
) -> list[tuple[str, bytes, bytes]]:
    key = customer.encode()
    messages = [
        (
            f"{prefix}customers",
            key,
            body(
                customer_id=customer,
                customer_type="residential",
                name="Erika Mustermann",  # a record may hold one; never shown
            ),
        )
    ]
    for day in range(130):  # four closed months: a tier
        messages.append(
            (
                f"{prefix}meter-readings",
                key,
                body(
                    customer_id=customer,
                    start=BASE + day * DAY,
                    interval_minutes=30,
                    values=[kwh_per_day / 48] * 48,
                ),
            )
        )
    return messages


def package_messages(
    prefix: str, package: str, kinds: list[tuple[str, bool | None]], start_s: int = 0
) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i, (kind, good) in enumerate(kinds):
        fields: dict[str, Any] = {
            "package_id": package,
            "kind": kind,
            "at": BASE + (start_s + i) * 1000,
        }
        if good is not None:
            fields["good"] = good
        out.append((f"{prefix}package-events", package.encode(), body(**fields)))
    return out


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float = 120.0, every: float = 0.5
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def residential(snapshot: dict[str, Any]) -> dict[str, int]:
    return dict(snapshot["tiers"]["residential"])


@pytest.fixture
def control_room_worker(
    broker: EmbeddedBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningWorker]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    monkeypatch.setenv("TARIFFSTREAM_CONTROL_ROOM", "1")
    running = start_worker(
        broker, new_prefix(), tmp_path / "worker.log", tmp_path / "data"
    )
    try:
        base = f"http://127.0.0.1:{running.web_port}"

        def page_served() -> bool:
            try:
                get_json(f"{base}/api/overview")
            except urllib.error.HTTPError as exc:
                assert exc.code != 404, (
                    "GET /api/overview is 404: register_control_room is not wired "
                    "into streams/worker.py"
                )
                return False
            except OSError:
                assert running.process.poll() is None, running.log.read_text()
                return False
            return True

        wait_for("the worker's web server", page_served, timeout=90)
        yield running
    finally:
        running.stop()


def chromium_cli(tmp_path: Path, url: str, *extra: str) -> str:
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        timeout=90,
        check=True,
    )
    return result.stdout.decode()


class OpenPage:
    """One Chromium page kept open, read through the DevTools protocol."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        assert CHROMIUM is not None
        self.profile = tmp_path / "profile-open"
        self.log = (tmp_path / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
                url,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ids = 0

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def evaluate(self, expression: str) -> Any:
        port_file = self.profile / "DevToolsActivePort"
        wait_for("Chromium's DevTools port", port_file.exists, timeout=30)
        port = int(port_file.read_text().split()[0])

        def page_target() -> str | None:
            targets = get_json(f"http://127.0.0.1:{port}/json/list")
            pages = [t for t in targets if t.get("type") == "page"]
            return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

        ws_url = wait_for("a page target", page_target, timeout=30)
        return asyncio.run(self._evaluate(ws_url, expression))

    async def _evaluate(self, ws_url: str, expression: str) -> Any:
        self.ids += 1
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url, max_msg_size=0) as ws,
        ):
            await ws.send_json(
                {
                    "id": self.ids,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "returnByValue": True},
                }
            )
            async for message in ws:
                reply = json.loads(message.data)
                if reply.get("id") == self.ids:
                    return reply["result"]["result"].get("value")
        raise AssertionError("no DevTools reply")


def read_page(page: OpenPage) -> dict[str, Any] | None:
    """The page's figures, or None while it is still loading."""
    raw = page.evaluate(READ_PAGE)
    return json.loads(raw) if isinstance(raw, str) else None


def test_control_room_shows_cluster_figures_and_updates_live(
    control_room_worker: RunningWorker, tmp_path: Path
) -> None:
    worker = control_room_worker
    prefix = worker.prefix
    base = f"http://127.0.0.1:{worker.web_port}"
    bootstrap = worker.broker.bootstrap

    # Moment 1: three residential customers in tier 2, a package in a campaign.
    first: list[tuple[str, bytes, bytes]] = []
    for n in range(3):
        first += customer_messages(prefix, f"cr-a{n}", 10.0)  # ~300 kWh a month
    first += package_messages(prefix, "PK-CR-A", [("review", True)] * 10)
    produce(bootstrap, first)

    def moment_one() -> dict[str, Any] | None:
        snap: dict[str, Any] = get_json(f"{base}/api/overview")
        done = residential(snap)["2"] == 3 and any(
            p["package_id"] == "PK-CR-A" and p["campaign_running"]
            for p in snap["packages"]
        )
        return snap if done and snap["workers"] else None

    wait_for("moment 1 in /api/overview", moment_one)

    page = OpenPage(tmp_path, f"{base}/")
    try:

        def page_one() -> dict[str, Any] | None:
            seen = read_page(page)
            if seen is None:
                return None
            residential_row = [r for r in seen["tiers"] if r[0] == "residential"]
            ok = (
                seen["updates"] >= 1
                and residential_row == [["residential", "0", "3", "0", "0", "3"]]
                and "PK-CR-A" in seen["packages"]
            )
            return seen if ok else None

        one = wait_for("moment 1 on the open page", page_one, timeout=60)
        page.evaluate("window.__controlRoomMarker = 'moment-1'")
        dom_one = chromium_cli(
            tmp_path, f"{base}/?updates=2", "--virtual-time-budget=5000", "--dump-dom"
        )

        # Moment 2: two customers in tier 1; a package whose campaign goes bad.
        second: list[tuple[str, bytes, bytes]] = []
        for n in range(2):
            second += customer_messages(prefix, f"cr-b{n}", 20.0)  # ~600 kWh
        second += package_messages(
            prefix,
            "PK-CR-B",
            [("review", True)] * 10 + [("unsubscribe", None)],
            start_s=100,
        )
        produce(bootstrap, second)

        def page_two() -> dict[str, Any] | None:
            seen = read_page(page)
            if seen is None:
                return None
            residential_row = [r for r in seen["tiers"] if r[0] == "residential"]
            ok = (
                residential_row == [["residential", "2", "3", "0", "0", "5"]]
                and "PK-CR-B" in seen["packages"]
                and 'class="bad"' in seen["effects"]
                and "INEFFECTIVE" in seen["effects"]
            )
            return seen if ok else None

        two = wait_for("moment 2 on the open page", page_two, timeout=120)
        # The same document all along: updated by server-sent events, no reload.
        assert two["marker"] == "moment-1"
        assert two["navigations"] == one["navigations"] == 1
        assert two["updates"] > one["updates"]
        assert two["workers"] == "1"
    finally:
        page.close()

    # Fresh pages: --dump-dom after scripts and events ran, and a screenshot.
    dom_two = chromium_cli(
        tmp_path, f"{base}/?updates=2", "--virtual-time-budget=5000", "--dump-dom"
    )
    for dom in (dom_one, dom_two):
        assert "tariffstream control room" in dom
        # rendered from two /events snapshots, then the stream was closed
        assert 'data-sse-updates="2"' in dom
    assert "PK-CR-A" in dom_one and "PK-CR-B" not in dom_one
    assert "PK-CR-B" in dom_two and "INEFFECTIVE" in dom_two
    row_one = '<td>residential</td><td class="num">0</td><td class="num">3</td>'
    assert row_one in dom_one
    row_two = '<td>residential</td><td class="num">2</td><td class="num">3</td>'
    assert row_two in dom_two
    screenshot = tmp_path / "control-room.png"
    chromium_cli(
        tmp_path,
        f"{base}/?updates=2",
        "--virtual-time-budget=5000",
        f"--screenshot={screenshot}",
        "--window-size=1280,900",
        "--hide-scrollbars",
    )
    assert screenshot.stat().st_size > 10_000
    print(f"control-room screenshot: {screenshot}")
    assert "Mustermann" not in dom_two
