"""Build the configured set of rule extractors and run them on one message."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, tzinfo

from nlu.merge import DEFAULT_TYPE_PRIORITY, merge_entities
from nlu.rules.base import RuleExtractor, fold_width
from nlu.rules.contact import EmailExtractor, PhoneExtractor
from nlu.rules.datetimes import DateTimeExtractor
from nlu.rules.identifiers import DEFAULT_ID_CONTEXT_WORDS, DEFAULT_ID_PATTERNS, IdExtractor
from nlu.rules.money import MoneyExtractor
from nlu.types import Entity

logger = logging.getLogger(__name__)

BUILT_IN_TYPES = frozenset({"email", "phone", "money", "date", "time", "datetime"})
"""Entity types the rule extractors return besides the configured id types."""

DEFAULT_MAX_TEXT_CHARS = 20_000
"""Characters of a message that the rules scan; the rest of a longer message is skipped."""


class RuleEntityExtractor:
    """The enabled rule extractors, run together on one message with their finds merged.

    Build it with ``build_rule_extractors``, which checks the configuration.

    Usage::

        rules = build_rule_extractors()
        rules.extract("我的订单号是A12345678，明天下午三点能送到吗？退款199元")
        # order_id A12345678, datetime <tomorrow>T15:00, money 199 CNY

    Args:
        extractors: The extractors to run.
        enabled_types: Entity types to return; others are dropped.
        type_priority: Passed to ``merge_entities`` for spans of equal length.
        max_text_chars: Characters scanned per message, or ``None`` for no limit.
        timezone: Zone of the default reference time; ``None`` uses the machine's zone.
    """

    def __init__(
        self,
        extractors: Sequence[RuleExtractor],
        enabled_types: frozenset[str],
        type_priority: Sequence[str],
        max_text_chars: int | None,
        timezone: tzinfo | None,
    ) -> None:
        self.extractors = tuple(extractors)
        self.enabled_types = enabled_types
        self.type_priority = tuple(type_priority)
        self.max_text_chars = max_text_chars
        self.timezone = timezone

    def extract(self, text: str, reference_time: datetime | None = None) -> list[Entity]:
        """Find the enabled entity types in ``text``, one entity per span.

        Overlapping finds are merged with ``merge_entities``, so the digits that both the
        phone and the order-id rule match give one entity. An extractor that fails is
        logged and skipped, so customer text never raises.

        Args:
            text: The message as the customer wrote it; offsets index into it.
            reference_time: The moment relative dates count from; time-zone-aware. Defaults
                to now in ``timezone``.

        Returns:
            The entities, sorted by start. Only the first ``max_text_chars`` characters are
            scanned.

        Raises:
            ValueError: If ``reference_time`` has no time zone.
        """
        reference_time = self._resolve_reference_time(reference_time)
        scanned = text
        if self.max_text_chars is not None and len(text) > self.max_text_chars:
            logger.debug(
                "Rule extraction scans only the first %d of %d characters; raise "
                "max_text_chars to scan more",
                self.max_text_chars,
                len(text),
            )
            # NOTE: an entity that crosses the cut is lost or found shortened.
            scanned = text[: self.max_text_chars]
        folded = fold_width(scanned)

        groups = [
            self._run(extractor, scanned, folded, reference_time) for extractor in self.extractors
        ]
        # Every entity here comes from a rule, so the type priority alone settles equal spans.
        entities = merge_entities(
            *groups, rule_types=self.enabled_types, type_priority=self.type_priority
        )
        logger.debug("Rules found %d entities in %d characters", len(entities), len(scanned))
        return entities

    def _resolve_reference_time(self, reference_time: datetime | None) -> datetime:
        if reference_time is None:
            return datetime.now(self.timezone).astimezone(self.timezone)
        if reference_time.tzinfo is None or reference_time.utcoffset() is None:
            raise ValueError(
                f"reference_time {reference_time.isoformat()} has no time zone; pass an aware "
                "datetime such as datetime.now(ZoneInfo('Asia/Shanghai'))."
            )
        return reference_time

    def _run(
        self, extractor: RuleExtractor, text: str, folded: str, reference_time: datetime
    ) -> list[Entity]:
        try:
            entities = extractor.extract(text, folded, reference_time)
        except Exception:
            # Customer text must never break a turn: log the failure and use the other rules.
            logger.exception(
                "Rule extractor %s failed on a message of %d characters; its entities are skipped",
                extractor.name,
                len(text),
            )
            return []
        return [entity for entity in entities if entity.type in self.enabled_types]


def build_rule_extractors(
    id_patterns: Mapping[str, str] | None = None,
    *,
    id_context_words: Mapping[str, Sequence[str]] | None = None,
    id_context_window_chars: int = 16,
    phone_context_window_chars: int = 16,
    enabled_types: Collection[str] | None = None,
    numeric_date_order: str = "MDY",
    dollar_currency: str = "USD",
    yen_currency: str = "CNY",
    max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS,
    timezone: tzinfo | None = None,
) -> RuleEntityExtractor:
    """Check the rule configuration and build the extractors it enables.

    Args:
        id_patterns: Id entity type -> regular expression (see ``nlu.rules.identifiers``).
            ``None`` uses ``DEFAULT_ID_PATTERNS`` (``order_id``, ``ticket_id``); ``{}`` finds
            no ids.
        id_context_words: Id type -> words that make a bare-number id count. ``None`` uses
            ``DEFAULT_ID_CONTEXT_WORDS`` for the types that have defaults.
        id_context_window_chars: Characters before an id searched for a context word.
        phone_context_window_chars: Characters before an unbroken digit run searched for a
            phone word; 0 finds such runs only when they are Chinese mobile numbers.
        enabled_types: Entity types to return, from ``BUILT_IN_TYPES`` and the id types.
            ``None`` enables all. Leaving out ``datetime`` returns adjacent dates and times
            separately.
        numeric_date_order: ``MDY`` or ``DMY``, how ``12/05/2026`` is read.
        dollar_currency: ISO 4217 code for ``$``, "dollars" and "bucks".
        yen_currency: ISO 4217 code for ``¥`` and ``￥``.
        max_text_chars: Characters of a message scanned, or ``None`` for no limit. Every
            pattern runs in linear time, so the limit only bounds the cost per message.
        timezone: Zone of the default reference time; ``None`` uses the machine's zone.

    Returns:
        The extractor set.

    Raises:
        ValueError: If any setting is invalid; the message names the setting and value.
    """
    id_extractor = _build_id_extractor(id_patterns, id_context_words, id_context_window_chars)
    known_types = BUILT_IN_TYPES | id_extractor.entity_types
    enabled = known_types if enabled_types is None else frozenset(enabled_types)
    _validate_enabled_types(enabled, known_types)
    if max_text_chars is not None and max_text_chars <= 0:
        raise ValueError(
            f"max_text_chars must be positive or None for no limit, got {max_text_chars}"
        )

    candidates: list[RuleExtractor] = [
        EmailExtractor(),
        PhoneExtractor(context_window_chars=phone_context_window_chars),
        id_extractor,
        DateTimeExtractor(numeric_date_order, join_date_and_time="datetime" in enabled),
        MoneyExtractor(dollar_currency=dollar_currency, yen_currency=yen_currency),
    ]
    extractors = [extractor for extractor in candidates if extractor.entity_types & enabled]
    # Configured id types first: an id found next to its context word beats any other shape.
    id_types = sorted(id_extractor.entity_types)
    type_priority = list(dict.fromkeys([*id_types, *DEFAULT_TYPE_PRIORITY]))
    logger.info(
        "Built rule extractors %s for types %s",
        [extractor.name for extractor in extractors],
        sorted(enabled),
    )
    return RuleEntityExtractor(extractors, enabled, type_priority, max_text_chars, timezone)


def _build_id_extractor(
    id_patterns: Mapping[str, str] | None,
    id_context_words: Mapping[str, Sequence[str]] | None,
    context_window_chars: int,
) -> IdExtractor:
    patterns = DEFAULT_ID_PATTERNS if id_patterns is None else id_patterns
    if not isinstance(patterns, Mapping):
        raise ValueError(
            f"id_patterns must map entity types to regular expressions, got {patterns!r}"
        )
    if id_context_words is None:
        id_context_words = {
            entity_type: words
            for entity_type, words in DEFAULT_ID_CONTEXT_WORDS.items()
            if entity_type in patterns
        }
    return IdExtractor(patterns, id_context_words, context_window_chars, BUILT_IN_TYPES)


def _validate_enabled_types(enabled: frozenset[str], known_types: frozenset[str]) -> None:
    unknown = sorted(enabled - known_types)
    if unknown:
        raise ValueError(
            f"enabled_types contains unknown entity types {unknown}; choose from "
            f"{sorted(known_types)}, or add an id pattern for a new id type."
        )
