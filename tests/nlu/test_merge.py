from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from nlu.merge import merge_entities, select_non_overlapping, slots_from_entities
from nlu.rules import build_rule_extractors
from nlu.types import Entity

REFERENCE = datetime(2026, 12, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))
MODEL = "model:crf-1"


def entity(text, fragment, entity_type, source, value=None, confidence=None, occurrence=0):
    """Build the entity of ``fragment`` inside ``text``, as an extractor would."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(fragment, start + 1)
    return Entity(
        type=entity_type,
        value=fragment if value is None else value,
        text=fragment,
        start=start,
        end=start + len(fragment),
        source=source,
        confidence=confidence,
    )


def spans(entities):
    return [(e.type, e.text, e.source) for e in entities]


# --- merge_entities -----------------------------------------------------------------------


def test_merge_longer_span_wins():
    text = "退款199元"
    rule = entity(text, "199元", "money", "rule:money", "199 CNY")
    model = entity(text, "199", "amount", MODEL, confidence=0.99)

    assert spans(merge_entities([rule], [model])) == [("money", "199元", "rule:money")]
    assert spans(merge_entities([model], [rule])) == [("money", "199元", "rule:money")]


def test_merge_partial_overlap_keeps_longer():
    text = "ship to Bob@Example.com"
    model = entity(text, "to Bob", "person", MODEL, confidence=0.7)
    rule = entity(text, "Bob@Example.com", "email", "rule:email", "bob@example.com")

    assert spans(merge_entities([model], [rule])) == [("email", "Bob@Example.com", "rule:email")]


def test_merge_equal_span_rule_wins():
    text = "call 13812345678"
    rule = entity(text, "13812345678", "phone", "rule:phone")
    model = entity(text, "13812345678", "phone", MODEL, confidence=0.95)

    assert spans(merge_entities([model], [rule])) == [("phone", "13812345678", "rule:phone")]


def test_merge_equal_span_model_wins():
    text = "invoice INV00042"
    rule = entity(text, "INV00042", "invoice_id", "rule:id")
    model = entity(text, "INV00042", "invoice_id", MODEL, confidence=0.6)

    default = merge_entities([rule], [model])
    rules_first = merge_entities([rule], [model], rule_types={"invoice_id"})

    assert spans(default) == [("invoice_id", "INV00042", MODEL)]
    assert spans(rules_first) == [("invoice_id", "INV00042", "rule:id")]


def test_merge_empty_rule_types_lets_models_win():
    text = "call 13812345678"
    rule = entity(text, "13812345678", "phone", "rule:phone")
    model = entity(text, "13812345678", "phone", MODEL, confidence=0.5)

    assert spans(merge_entities([rule], [model], rule_types=set())) == [
        ("phone", "13812345678", MODEL)
    ]


def test_merge_phone_and_order_id():
    text = "订单13812345678"
    phone = entity(text, "13812345678", "phone", "rule:phone")
    order = entity(text, "13812345678", "order_id", "rule:id")

    assert spans(merge_entities([phone], [order])) == [("order_id", "13812345678", "rule:id")]
    assert spans(merge_entities([order, phone])) == [("order_id", "13812345678", "rule:id")]


def test_merge_type_priority_is_configurable():
    text = "订单13812345678"
    phone = entity(text, "13812345678", "phone", "rule:phone")
    order = entity(text, "13812345678", "order_id", "rule:id")

    merged = merge_entities([order], [phone], type_priority=["phone", "order_id"])

    assert spans(merged) == [("phone", "13812345678", "rule:phone")]


def test_merge_identical_entities_keep_one():
    text = "mail a@b.co"
    first = entity(text, "a@b.co", "email", "rule:email")

    assert merge_entities([first], [first], [first]) == [first]


def test_merge_models_tie_on_confidence_then_group():
    text = "play Jay Chou songs"
    low = entity(text, "Jay Chou", "singer", "model:a", confidence=0.4)
    high = entity(text, "Jay Chou", "artist", "model:b", confidence=0.9)
    same = entity(text, "Jay Chou", "person", "model:c", confidence=0.9)

    assert spans(merge_entities([low], [high])) == [("artist", "Jay Chou", "model:b")]
    assert spans(merge_entities([same], [high])) == [("person", "Jay Chou", "model:c")]


def test_merge_sorts_by_start_and_keeps_disjoint():
    text = "a@b.co, 13812345678, c@d.co"
    later = entity(text, "c@d.co", "email", "rule:email")
    phone = entity(text, "13812345678", "phone", "rule:phone")
    first = entity(text, "a@b.co", "email", "rule:email")

    merged = merge_entities([later, phone], [first])

    assert [e.text for e in merged] == ["a@b.co", "13812345678", "c@d.co"]


def test_merge_drops_empty_span_with_warning(caplog):
    broken = Entity(type="product", value="x", text="", start=4, end=4, source=MODEL)
    kept = Entity(type="product", value="tv", text="tv", start=0, end=2, source=MODEL)

    with caplog.at_level(logging.WARNING, logger="nlu.merge"):
        merged = merge_entities([broken, kept])

    assert merged == [kept]
    assert "empty span 4:4" in caplog.text


def test_merge_no_groups_returns_empty():
    assert merge_entities() == []
    assert merge_entities([], []) == []


def test_merge_rule_output_with_model_entity():
    text = "我的订单号是A12345678，明天下午三点能送到吗？退款199元"
    rules = build_rule_extractors().extract(text, REFERENCE)
    model = [
        entity(text, "A12345678", "order_id", MODEL, confidence=0.8),
        entity(text, "明天", "date", MODEL, "2026-12-03", confidence=0.9),
        entity(text, "送到", "action", MODEL, confidence=0.7),
    ]

    merged = merge_entities(rules, model)

    assert spans(merged) == [
        ("order_id", "A12345678", "rule:id"),
        ("datetime", "明天下午三点", "rule:datetime"),
        ("action", "送到", MODEL),
        ("money", "199元", "rule:money"),
    ]


# --- slots_from_entities ------------------------------------------------------------------


def test_slots_one_per_type_first_in_text():
    text = "change 12/05/2026 to 12/09/2026"
    first = entity(text, "12/05/2026", "date", "rule:datetime", "2026-12-05")
    second = entity(text, "12/09/2026", "date", "rule:datetime", "2026-12-09")

    slots = slots_from_entities([second, first])

    assert list(slots) == ["date"]
    assert slots["date"].value == "2026-12-05"


def test_slots_same_text_one_slot():
    text = "订单13812345678"
    phone = entity(text, "13812345678", "phone", "rule:phone")
    order = entity(text, "13812345678", "order_id", "rule:id")
    model = entity(text, "13812345678", "order_id", MODEL, confidence=0.9)

    slots = slots_from_entities([phone, model, order])

    assert list(slots) == ["order_id"]
    assert slots["order_id"].source == "rule:id"


def test_slots_same_value_twice_keeps_first():
    text = "mail a@b.co, again: a@b.co"
    first = entity(text, "a@b.co", "email", "rule:email")
    repeat = entity(text, "a@b.co", "email", "rule:email", occurrence=1)

    slots = slots_from_entities([repeat, first])

    assert slots["email"].start == first.start


def test_slots_keep_text_order_of_types():
    text = "Refund 100元 to a@b.co for order A12345678"
    rules = build_rule_extractors().extract(text, REFERENCE)

    slots = slots_from_entities(rules)

    assert list(slots) == ["money", "email", "order_id"]
    assert {name: slot.value for name, slot in slots.items()} == {
        "money": "100 CNY",
        "email": "a@b.co",
        "order_id": "A12345678",
    }


def test_slots_empty():
    assert slots_from_entities([]) == {}


# --- select_non_overlapping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ranked", "expected"),
    [
        ([(0, 5), (3, 8), (5, 9)], [(0, 5), (5, 9)]),
        ([(3, 8), (0, 5), (5, 9)], [(3, 8)]),
        ([(2, 3), (0, 10)], [(2, 3)]),
        ([(0, 10), (2, 3)], [(0, 10)]),
        ([(4, 6), (0, 2), (2, 4), (6, 8)], [(0, 2), (2, 4), (4, 6), (6, 8)]),
    ],
)
def test_select_non_overlapping(ranked, expected):
    assert select_non_overlapping(ranked, lambda span: span) == expected


def test_select_non_overlapping_many_items():
    ranked = [(start, start + 2) for start in range(0, 60_000)]

    selected = select_non_overlapping(ranked, lambda span: span)

    assert len(selected) == 30_000
    assert selected[:2] == [(0, 2), (2, 4)]
