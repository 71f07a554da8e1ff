"""The output contracts: every schema is valid, matches its event dataclass, and
accepts the events the real rules produce; broken events are rejected."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from agents._io import Context
from models.events import (
    SCHEMA_VERSION,
    CampaignCommand,
    CampaignEffect,
    CustomerRecord,
    DeadLetter,
    HeatChange,
    IntervalBlock,
    MarketingAction,
    PackageEvent,
    PackageEventKind,
    Recommendation,
    Rejection,
    SwitchDecision,
    TierChange,
)
from rules.consumption import CustomerState, book_meter_message
from rules.packages import PackageState, apply_campaign_command, apply_package_event
from rules.recommend import apply_customer_record, apply_decision, evaluate
from streams.metrics import Metrics
from tests.helpers import make_settings
from tests.schema_check import OUTPUT_TOPICS, load_schema, validate_output
from tests.unit.test_consumption import Customer, feed_year
from tests.unit.test_recommend import catalog

DAY = 86_400_000
T0 = 1_700_000_000_000

EVENT_CLASSES: dict[str, type[Any]] = {
    "tier-changes": TierChange,
    "recommendations": Recommendation,
    "package-heat": HeatChange,
    "marketing-actions": MarketingAction,
    "campaign-effects": CampaignEffect,
    "dead-letters": DeadLetter,
}

PackageOutput = HeatChange | MarketingAction | CampaignEffect


# --- the schemas themselves ---------------------------------------------------


@pytest.mark.parametrize("topic", OUTPUT_TOPICS)
def test_every_schema_is_a_valid_draft_2020_12_schema(topic: str) -> None:
    schema = load_schema(topic)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://tariffstream.example/schemas/{topic}/v1"
    assert schema["title"] and schema["description"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("topic", OUTPUT_TOPICS)
def test_every_schema_lists_exactly_the_fields_of_its_dataclass(topic: str) -> None:
    schema = load_schema(topic)
    cls = EVENT_CLASSES[topic]
    fields = [f.name for f in dataclasses.fields(cls)] + ["version", "type"]
    assert set(schema["properties"]) == set(fields)
    assert set(schema["required"]) == set(fields)
    assert schema["properties"]["version"]["const"] == SCHEMA_VERSION == 1
    assert schema["properties"]["type"]["const"] == cls.EVENT_TYPE
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{topic}.{name} has no description"


def test_output_topics_are_the_six_published_topics() -> None:
    assert set(OUTPUT_TOPICS) == set(EVENT_CLASSES)


# --- events built by the real rules -------------------------------------------


def test_tier_changes_and_recommendations_of_the_rules_validate() -> None:
    customer = Customer()
    apply_customer_record(
        customer.state, CustomerRecord("c1", "residential", None, 3, "P3")
    )
    feed_year(customer, [300, 300, 300])
    first = evaluate(customer.state, customer.settings, catalog(), T0)
    assert first.tier_change is not None and first.tier_change.old_tier is None
    assert first.recommendation is not None
    validate_output("tier-changes", first.tier_change.to_dict())
    validate_output("recommendations", first.recommendation.to_dict())

    decline = SwitchDecision(
        "c1", first.recommendation.recommendation_id, "decline", T0 + 1
    )
    assert apply_decision(customer.state, decline).rejection is None
    feed_year(customer, [600, 600, 600, 600], year=2023)  # now band 1
    later = evaluate(customer.state, customer.settings, catalog(), T0 + 2)
    assert later.tier_change is not None
    assert (later.tier_change.old_tier, later.tier_change.new_tier) == (2, 1)
    assert later.recommendation is not None
    validate_output("tier-changes", later.tier_change.to_dict())
    validate_output("recommendations", later.recommendation.to_dict())


def test_a_recommendation_without_tier_or_package_on_record_validates() -> None:
    customer = Customer()
    apply_customer_record(customer.state, CustomerRecord("c1", "residential"))
    feed_year(customer, [100, 100, 100])
    result = evaluate(customer.state, customer.settings, catalog(), T0)
    assert result.recommendation is not None
    assert result.recommendation.current_tier is None
    assert result.recommendation.current_package is None
    validate_output("recommendations", result.recommendation.to_dict())


def _publish(outputs: list[PackageOutput]) -> None:
    topics = {
        HeatChange: "package-heat",
        MarketingAction: "marketing-actions",
        CampaignEffect: "campaign-effects",
    }
    for output in outputs:
        validate_output(topics[type(output)], output.to_dict())


def test_an_accepted_recommendation_moves_packages_whose_outputs_validate() -> None:
    settings = make_settings()
    customer = Customer()
    apply_customer_record(
        customer.state, CustomerRecord("c1", "residential", None, 3, "P3")
    )
    feed_year(customer, [300, 300, 300])
    recommendation = evaluate(
        customer.state, customer.settings, catalog(), T0
    ).recommendation
    assert recommendation is not None
    accepted = apply_decision(
        customer.state,
        SwitchDecision("c1", recommendation.recommendation_id, "accept", T0 + 5),
    )
    assert [e.kind for e in accepted.package_events] == ["unsubscribe", "subscribe"]
    outputs: list[PackageOutput] = []
    packages: dict[str, PackageState] = {}
    for event in accepted.package_events:
        state = packages.setdefault(event.package_id, PackageState(event.package_id))
        outputs += apply_package_event(state, event, settings)
    assert [type(o) for o in outputs] == [HeatChange, HeatChange]
    _publish(outputs)


def _feed(
    state: PackageState,
    kind: PackageEventKind,
    count: int,
    at_ms: int,
    good: bool | None = None,
) -> list[PackageOutput]:
    settings = make_settings()
    outputs: list[PackageOutput] = []
    for _ in range(count):
        event = PackageEvent(state.package_id, kind, at_ms, good)
        outputs += apply_package_event(state, event, settings)
    return outputs


def test_a_campaign_that_grows_into_a_new_level_publishes_valid_events() -> None:
    state = PackageState("P1")
    outputs = _feed(state, "review", 10, T0, good=True)  # TS 10: medium, level 2
    provisional = [o for o in outputs if isinstance(o, CampaignEffect)]
    assert [(e.final, e.ended_ms, e.achieved_grade) for e in provisional] == [
        (False, None, "clear")
    ]
    later = _feed(state, "subscribe", 1000, T0 + 10 * DAY)  # TS 20: hot, level 3
    finals = [o for o in later if isinstance(o, CampaignEffect) and o.final]
    assert len(finals) == 1 and finals[0].reached and not finals[0].ineffective
    assert finals[0].ended_ms == T0 + 10 * DAY
    _publish(outputs + later)


def test_ineffective_stopped_and_cleared_campaigns_publish_valid_events() -> None:
    settings = make_settings()
    state = PackageState("P1")
    outputs = _feed(state, "review", 10, T0, good=True)  # level 2, ts1 = 0
    # One unsubscribe: TS 10 -> 0, cold, level 1; campaign c1 ends without gain
    # and c2 (ts1 = 10) starts below its start.
    outputs += _feed(state, "unsubscribe", 1, T0 + DAY)
    effects = [o for o in outputs if isinstance(o, CampaignEffect)]
    assert [(e.campaign_id, e.final, e.ineffective) for e in effects] == [
        ("P1-c1", False, False),
        ("P1-c1", True, True),
        ("P1-c2", False, True),
    ]
    assert effects[1].achieved_grade is None and effects[2].achieved_grade is None
    stopped = apply_campaign_command(
        state, CampaignCommand("P1", "stop", T0 + 2 * DAY), settings
    )
    assert len(stopped) == 1 and isinstance(stopped[0], CampaignEffect)
    assert stopped[0].final and stopped[0].ineffective and state.level == 1
    outputs += stopped
    cleared = _feed(state, "review", 3, T0 + 3 * DAY, good=False)  # HL 10/13
    actions = [o for o in cleared if isinstance(o, MarketingAction)]
    assert [(a.old_level, a.new_level, a.measures) for a in actions] == [(1, None, [])]
    outputs += cleared
    assert any(isinstance(o, HeatChange) and o.old_heat is None for o in outputs)
    _publish(outputs)


class _Topic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))


def _dead_letters(messages: list[tuple[Any, Rejection]]) -> list[dict[str, Any]]:
    """Dead letters as agents._io.Context.dead_letter publishes them."""
    settings = make_settings()
    topic = _Topic()
    topology = SimpleNamespace(settings=settings, topics={"dead-letters": topic})
    ctx = Context(topology, Metrics(CollectorRegistry()))  # type: ignore[arg-type]

    async def send_all() -> None:
        for message, rejection in messages:
            await ctx.dead_letter(message, rejection)

    asyncio.run(send_all())
    return [orjson.loads(value) for _key, value in topic.sent]


def _message(value: Any, key: bytes | None = b"c1", offset: int = 7) -> Any:
    return SimpleNamespace(
        topic="tariffstream.meter-readings",
        partition=2,
        offset=offset,
        key=key,
        value=value,
    )


def test_dead_letters_of_the_agents_validate() -> None:
    too_late = Customer()
    feed_year(too_late, [300] * 16)
    old = IntervalBlock("c1", "m1", T0 - 400 * DAY, 1_800_000, (0.1,) * 4)
    booking_rejections: list[Rejection] = []
    booking = book_meter_message(
        too_late.state, old, too_late.ledger, too_late.settings
    )
    booking_rejections += booking.rejections
    assert [(r.reason, r.count) for r in booking_rejections] == [("too_late", 4)]
    unknown = apply_decision(
        CustomerState("c1"), SwitchDecision("c1", "c1-r9", "accept", T0)
    ).rejection
    assert unknown is not None
    letters = _dead_letters(
        [
            (_message(b'{"customer_id": "c1"'), Rejection("bad_json", None, "x")),
            (_message(b"\xff\xfe\x00"), Rejection("bad_json", None, "not JSON")),
            (_message(None, key=None), Rejection("not_an_object")),
            (_message(b"{}"), booking_rejections[0]),
            (_message(b"{}"), unknown),
        ]
    )
    assert [letter["extra"] for letter in letters] == [
        {"encoding": "utf-8", "count": 1},
        {"encoding": "base64", "count": 1},
        {"encoding": "utf-8", "count": 1},
        {"encoding": "utf-8", "count": 4},
        {"encoding": "utf-8", "count": 1},
    ]
    for letter in letters:
        validate_output("dead-letters", letter)
    direct = DeadLetter("t", None, None, "bad_json", None, "", "", {})
    with pytest.raises(AssertionError, match="encoding"):
        validate_output("dead-letters", direct.to_dict())


# --- broken events are rejected -----------------------------------------------


def _heat() -> dict[str, Any]:
    return HeatChange("P1", None, "cold", 0.0, T0).to_dict()


def _effect(**changes: Any) -> dict[str, Any]:
    effect = CampaignEffect(
        "P1-c1", "P1", 2, False, T0, None, 1.0, 0.0, 10.0, 10.0, False,
        "clear", "slight", True, T0 + DAY,
    )  # fmt: skip
    return dataclasses.replace(effect, **changes).to_dict()


def test_a_valid_reference_event_passes() -> None:
    validate_output("package-heat", _heat())
    validate_output("campaign-effects", _effect())


def test_a_missing_field_is_rejected() -> None:
    event = _heat()
    del event["ts"]
    with pytest.raises(AssertionError, match="'ts' is a required property"):
        validate_output("package-heat", event)


def test_a_heat_outside_cold_medium_hot_is_rejected() -> None:
    event = _heat()
    event["new_heat"] = "warm"
    with pytest.raises(AssertionError, match=r"\$\.new_heat: 'warm' is not one of"):
        validate_output("package-heat", event)


def test_an_unknown_field_is_rejected_but_extra_is_open() -> None:
    event = _heat()
    event["colour"] = "red"
    with pytest.raises(AssertionError, match="Additional properties"):
        validate_output("package-heat", event)
    letter = DeadLetter(
        "tariffstream.customers", 0, 1, "bad_json", None, "", "{",
        {"encoding": "utf-8", "count": 1, "schema_hint": "future"},
    ).to_dict()  # fmt: skip
    validate_output("dead-letters", letter)


@pytest.mark.parametrize(
    ("topic", "event", "fragment"),
    [
        ("package-heat", {**_heat(), "version": 2}, "version"),
        ("package-heat", {**_heat(), "type": "tier_change"}, "$.type"),
        ("package-heat", {**_heat(), "ts": "10"}, "$.ts"),
        ("campaign-effects", _effect(level=None), "$.level"),
        ("campaign-effects", _effect(achieved_grade="huge"), "$.achieved_grade"),
        ("campaign-effects", _effect(final=True), "$.ended_ms"),
        ("campaign-effects", _effect(ended_ms=T0 + DAY), "$.ended_ms"),
        ("campaign-effects", _effect(ineffective=True), "$.achieved_grade"),
        ("campaign-effects", _effect(level=True), "$.level"),
    ],
)
def test_wrong_values_are_rejected_with_the_field_named(
    topic: str, event: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(AssertionError) as raised:
        validate_output(topic, copy.deepcopy(event))
    assert fragment in str(raised.value)


def test_tier_and_marketing_enums_are_enforced() -> None:
    change = TierChange(
        "c1", "residential", None, 2, {"1": 0, "2": 3, "3": 0},
        ["2023-01", "2023-02", "2023-03"], T0,
    ).to_dict()  # fmt: skip
    validate_output("tier-changes", change)
    for field, value in (("new_tier", 4), ("customer_type", "industrial")):
        with pytest.raises(AssertionError, match=field):
            validate_output("tier-changes", {**change, field: value})
    with pytest.raises(AssertionError, match=r"\$\.months\[0\]"):
        validate_output("tier-changes", {**change, "months": ["2023-13"]})
    action = MarketingAction("P1", None, 2, ["x"], "medium", 1.0, T0).to_dict()
    validate_output("marketing-actions", action)
    with pytest.raises(AssertionError, match="new_level"):
        validate_output("marketing-actions", {**action, "new_level": 0})


def test_an_event_that_is_not_json_is_rejected() -> None:
    int_keys: dict[Any, int] = {1: 3}  # band numbers must be strings in JSON
    change = TierChange("c1", None, None, 1, int_keys, [], T0).to_dict()
    with pytest.raises(AssertionError, match="cannot be encoded as JSON"):
        validate_output("tier-changes", change)
