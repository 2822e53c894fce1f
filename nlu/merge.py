"""Merge entities from rules and models into one list without duplicates, and fill slots.

Entities from several extractors may cover the same characters: the phone rule and the
order-id rule can both find ``13812345678``, and a model may tag a span that a rule found
too. ``merge_entities`` keeps one entity wherever spans overlap:

1. A rule entity (``source`` starting ``rule:``) of a fixed-shape type in ``rule_types``
   wins over anything else: its shape is checked, while a model tagging "我的订单号是
   A12345678" as a song title out of its domain would otherwise swallow the order id.
2. Then the longer span wins; on equal lengths a rule for the types in ``rule_types``, a
   model for every other type.
3. Then the type listed earlier in ``type_priority`` wins, and types not listed rank last.
4. Then the higher confidence wins (a rule's ``None`` counts as 0).
5. Then the entity from the earlier group, and within a group the earlier one, wins.

Usage::

    entities = merge_entities(rules.extract(text), tagger.predict(text))
    slots = slots_from_entities(entities)  # {"order_id": Entity(...), "date": Entity(...)}
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

from nlu.types import Entity

logger = logging.getLogger(__name__)

FIXED_SHAPE_TYPES = frozenset(
    {"email", "phone", "money", "date", "time", "datetime", "order_id", "ticket_id"}
)
"""Types whose rule entities win over model entities on the same span."""

DEFAULT_TYPE_PRIORITY = (
    "email", "order_id", "ticket_id", "datetime", "date", "time", "money", "phone",
)  # fmt: skip
"""Types from most to least specific, for overlapping spans of equal length and source rank.

An id found next to its context word ("order 13812345678") beats the phone shape it also has.
"""

T = TypeVar("T")


def merge_entities(
    *groups: Iterable[Entity],
    rule_types: Collection[str] = FIXED_SHAPE_TYPES,
    type_priority: Sequence[str] = DEFAULT_TYPE_PRIORITY,
) -> list[Entity]:
    """Merge entity lists so that no two kept entities overlap.

    Args:
        *groups: Entity lists, for example the rules' and a model's; earlier groups win ties.
        rule_types: Types for which a rule beats a model on a span of equal length; for
            other types the model wins. Pass an empty set to let models always win.
        type_priority: Types from most to least preferred, as the module docstring explains.

    Returns:
        The kept entities, sorted by start (then end). Entities with ``end <= start`` are
        dropped with a warning.
    """
    type_rank = {entity_type: rank for rank, entity_type in enumerate(type_priority)}
    candidates = []
    for group_index, group in enumerate(groups):
        for index, entity in enumerate(group):
            if entity.end <= entity.start:
                logger.warning(
                    "Dropped %s entity from %s with empty span %d:%d; fix the extractor",
                    entity.type,
                    entity.source,
                    entity.start,
                    entity.end,
                )
                continue
            is_rule = entity.source.startswith("rule:")
            is_preferred_source = is_rule == (entity.type in rule_types)
            key = (
                not (is_rule and entity.type in rule_types),
                entity.start - entity.end,
                not is_preferred_source,
                type_rank.get(entity.type, len(type_rank)),
                -(entity.confidence or 0.0),
                group_index,
                index,
            )
            candidates.append((key, entity))

    candidates.sort(key=lambda candidate: candidate[0])
    return select_non_overlapping(
        (entity for _, entity in candidates), lambda entity: (entity.start, entity.end)
    )


def slots_from_entities(
    entities: Iterable[Entity],
    *,
    rule_types: Collection[str] = FIXED_SHAPE_TYPES,
    type_priority: Sequence[str] = DEFAULT_TYPE_PRIORITY,
) -> dict[str, Entity]:
    """Choose one entity per slot type.

    The entities are merged first (see ``merge_entities``), so text found by two extractors
    fills one slot only. When a type still occurs several times, the first in the text fills
    the slot and the others are dropped, whatever their values.

    Args:
        entities: Entities of one message, merged or not.
        rule_types: Passed to ``merge_entities``.
        type_priority: Passed to ``merge_entities``.

    Returns:
        Slot type -> entity, in the order the slots first appear in the text.
    """
    slots: dict[str, Entity] = {}
    merged = merge_entities(list(entities), rule_types=rule_types, type_priority=type_priority)
    for entity in merged:
        slots.setdefault(entity.type, entity)
    return slots


def select_non_overlapping(ranked: Iterable[T], span_of: Callable[[T], tuple[int, int]]) -> list[T]:
    """Select each item whose span overlaps no item selected before it.

    Args:
        ranked: Items from most to least preferred.
        span_of: Returns an item's ``(start, end)``, end exclusive.

    Returns:
        The selected items, sorted by span. Each item costs one binary search and one list
        insert.
    """
    selected_spans: list[tuple[int, int]] = []
    selected: list[T] = []
    for item in ranked:
        start, end = span_of(item)
        index = bisect.bisect_left(selected_spans, (start, end))
        # Selected spans do not overlap each other, so only the two neighbours can overlap.
        if index > 0 and selected_spans[index - 1][1] > start:
            continue
        if index < len(selected_spans) and selected_spans[index][0] < end:
            continue
        selected_spans.insert(index, (start, end))
        selected.insert(index, item)
    return selected
