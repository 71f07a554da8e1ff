"""The SRE view: Prometheus alert rules, the Grafana dashboard and their wiring.

Docker cannot run on the development machines, so these check the files: they
parse, every metric they query is one the workers export, and the compose stack
mounts them where Prometheus and Grafana look. When ``promtool`` is on PATH it
checks the rules and the Prometheus config as Prometheus would load them.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus.yml"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
DASHBOARD = PROVISIONING / "dashboards" / "tariffstream.json"
PROVIDER = PROVISIONING / "dashboards" / "dashboards.yml"
DATASOURCES = PROVISIONING / "datasources" / "prometheus.yml"

# Every metric the dashboard and the alerts may query: the domain metrics of
# streams/metrics.py, the gauges the workers are getting, and Prometheus' `up`.
DOMAIN_METRICS = frozenset(
    {
        "tariffstream_readings_total",
        "tariffstream_messages_total",
        "tariffstream_dead_letters_total",
        "tariffstream_tier_changes_total",
        "tariffstream_recommendations_total",
        "tariffstream_catalog_gaps_total",
        "tariffstream_heat_changes_total",
        "tariffstream_marketing_level_changes_total",
        "tariffstream_campaign_results_total",
        "tariffstream_event_time_lag_seconds",
        "tariffstream_processing_latency_seconds",
    }
)
GAUGES = frozenset(
    {
        "tariffstream_customers",
        "tariffstream_packages",
        "tariffstream_campaigns_running",
        "tariffstream_tables_recovered",
        "tariffstream_last_reading_event_time_seconds",
        "tariffstream_last_message_seconds",
    }
)
HISTOGRAMS = frozenset({"tariffstream_processing_latency_seconds"})
KNOWN_METRICS = (
    DOMAIN_METRICS
    | GAUGES
    | {"up"}
    | {
        f"{name}{suffix}"
        for name in HISTOGRAMS
        for suffix in ("_bucket", "_sum", "_count")
    }
)

ALERT_FOR = {
    "TariffstreamWorkerDown": "2m",
    "TariffstreamLagGrowing": "15m",
    "TariffstreamDeadLettersArriving": None,
    "TariffstreamNoReadings": None,
    "TariffstreamRecoveryNotFinishing": "10m",
}
# Labels an annotation may show: bounded ones, never a customer or a reading.
ANNOTATION_LABELS = frozenset({"instance", "job", "topic", "reason"})

_PROMQL_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small tokenizer, enough
    for these files): strings, label matchers, ranges, grouping label lists,
    functions and keywords are not metric names."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )
    text = re.sub(r"\$\{?\w+\}?", " ", text)
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, topic) (rate(x_bucket{job="up"}'
        "[$__rate_interval]))) > 1 and on (instance) up == 0 or vector(1)"
    )
    assert metric_names(expr) == {"x_bucket", "up"}


def test_known_domain_metrics_are_in_streams_metrics() -> None:
    source = (ROOT / "streams" / "metrics.py").read_text()
    for name in DOMAIN_METRICS:
        assert f'"{name}"' in source, f"{name} is not defined in streams/metrics.py"


# --- the dashboard ---------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in load_dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return [panel for panel in panels if panel.get("type") != "row"]


def test_dashboard_parses_with_uid_title_and_panels() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "tariffstream"
    assert dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = dashboard_panels()
    assert len(panels) >= 11
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["title"], panel
        assert panel["type"], panel


def test_dashboard_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_panel_queries_a_tariffstream_metric_or_up() -> None:
    for panel in dashboard_panels():
        exprs = [target.get("expr", "") for target in panel.get("targets", [])]
        assert any(
            any(
                name.startswith("tariffstream_") or name == "up"
                for name in metric_names(expr)
            )
            for expr in exprs
        ), f"panel {panel['title']!r} queries no tariffstream metric"


def test_dashboard_queries_only_known_metrics() -> None:
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            unknown = metric_names(target["expr"]) - KNOWN_METRICS
            assert not unknown, f"panel {panel['title']!r} queries unknown {unknown}"


def test_dashboard_uses_the_provisioned_prometheus_datasource() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    names = {source["name"] for source in provisioned if source["type"] == "prometheus"}
    assert "Prometheus" in names
    variables = {
        variable["name"]: variable
        for variable in load_dashboard()["templating"]["list"]
        if variable["type"] == "datasource"
    }
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "Prometheus"
    reference = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dashboard_panels():
        assert panel["datasource"] == reference, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == reference, panel["title"]


def test_ineffective_campaigns_are_highlighted() -> None:
    (panel,) = [
        panel
        for panel in dashboard_panels()
        if any(
            "tariffstream_campaign_results_total" in t["expr"] for t in panel["targets"]
        )
    ]
    overrides = panel["fieldConfig"]["overrides"]
    assert any(
        override["matcher"] == {"id": "byName", "options": "ineffective"}
        and any(prop["id"] == "color" for prop in override["properties"])
        for override in overrides
    )


def test_dashboard_provider_loads_the_dashboard_folder() -> None:
    provider = yaml.safe_load(PROVIDER.read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == "/etc/grafana/provisioning/dashboards"


# --- the alerts ------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert [group["name"] for group in groups] == ["tariffstream"]
    rules: list[dict[str, Any]] = groups[0]["rules"]
    return rules


def test_alerts_parse_with_labels_annotations_and_durations() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == set(ALERT_FOR)
    assert len(rules) == len(ALERT_FOR)
    for rule in rules:
        name = rule["alert"]
        assert rule["expr"].strip(), name
        assert rule.get("for") == ALERT_FOR[name], name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name} lacks {key}"
        for text in annotations.values():
            shown = set(re.findall(r"\$labels\.(\w+)", text))
            assert shown <= ANNOTATION_LABELS, f"{name} shows {shown}"


def test_alerts_query_only_known_metrics() -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert not names - KNOWN_METRICS, f"{rule['alert']}: {names - KNOWN_METRICS}"


def test_alert_expressions() -> None:
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in alert_rules()}
    assert exprs["TariffstreamWorkerDown"] == 'up{job="tariffstream"} == 0'
    assert (
        "deriv(tariffstream_event_time_lag_seconds[10m]) > 0"
        in exprs["TariffstreamLagGrowing"]
    )
    assert (
        "tariffstream_event_time_lag_seconds > 3600" in exprs["TariffstreamLagGrowing"]
    )
    assert exprs["TariffstreamDeadLettersArriving"] == (
        "increase(tariffstream_dead_letters_total[10m]) > 0"
    )
    assert (
        "increase(tariffstream_readings_total[30m])" in exprs["TariffstreamNoReadings"]
    )
    assert exprs["TariffstreamNoReadings"].endswith("== 0")
    assert (
        exprs["TariffstreamRecoveryNotFinishing"]
        == "tariffstream_tables_recovered == 0"
    )


# --- the wiring ------------------------------------------------------------------


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The host path a compose service sees at container_path (longest mount)."""
    best: tuple[int, Path] | None = None
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith("."):
            continue
        target = target.rstrip("/")
        if container_path == target or container_path.startswith(target + "/"):
            rest = container_path[len(target) :].lstrip("/")
            candidate = (ROOT / source / rest).resolve()
            if best is None or len(target) > best[0]:
                best = (len(target), candidate)
    return None if best is None else best[1]


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text()
    )["services"]
    return services


def test_prometheus_loads_the_alerts_in_compose() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    # Locally, as promtool resolves it: next to the config file.
    assert (PROMETHEUS.parent / config["rule_files"][0]).resolve() == ALERTS.resolve()
    # In the stack: relative to the config's directory in the container.
    prometheus = compose_services()["prometheus"]
    config_in_container = "/etc/prometheus/prometheus.yml"
    assert host_path(prometheus, config_in_container) == PROMETHEUS.resolve()
    for rule_file in config["rule_files"]:
        in_container = posixpath.join(posixpath.dirname(config_in_container), rule_file)
        assert host_path(prometheus, in_container) == ALERTS.resolve()


def test_grafana_sees_the_dashboard_provider_and_dashboard_in_compose() -> None:
    grafana = compose_services()["grafana"]
    provider = yaml.safe_load(PROVIDER.read_text())["providers"][0]
    folder = host_path(grafana, provider["options"]["path"])
    assert folder == DASHBOARD.parent.resolve()
    assert host_path(
        grafana, "/etc/grafana/provisioning/dashboards/dashboards.yml"
    ) == (PROVIDER.resolve())
    assert host_path(
        grafana, "/etc/grafana/provisioning/datasources/prometheus.yml"
    ) == (DATASOURCES.resolve())


# --- promtool --------------------------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not on PATH (Debian: apt-get install prometheus)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_checks_the_config_and_its_rule_files() -> None:
    result = promtool("check", "config", str(PROMETHEUS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr
