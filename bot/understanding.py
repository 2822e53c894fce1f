"""Understand one customer turn: intent with an out-of-scope verdict, entities and slots.

Steps for each turn, in order:

1. Clean the text (NFKC, length cap).
2. Classify the intent with the active intent model of the turn's language. With no active
   model, the turn is out of scope with reason ``no_model``.
3. Tag entities with the active entity model of that language.
4. Run the rule extractors (e-mail, phone, ids, dates, times, money).
5. Merge model and rule entities, so that each span is kept once and each slot gets one
   value.

A model that raises on a turn is logged and skipped, so a model failure does not fail the
turn.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.config import NluSettings
from bot.nlu_models import NluModels
from nlu.merge import FIXED_SHAPE_TYPES, merge_entities, slots_from_entities
from nlu.normalize import normalize_text
from nlu.rules.registry import RuleEntityExtractor, build_rule_extractors
from nlu.types import Entity, IntentPrediction
from storage.models import ModelKind

logger = logging.getLogger(__name__)


@dataclass
class Understanding:
    """Result of understanding one turn: intent, entities and slots.

    Attributes:
        intent: The intent verdict.
        entities: Entities found by the models and the rules, one per span, in text order.
        slots: One entity per slot type.
        language: The language whose models were used.
        versions: ``{"intent": version, "ner": version}`` of the models used, with None
            for a kind that had no active model.
        truncated: Whether the models read only the first ``nlu.max_chars`` characters.
        elapsed_ms: Time spent understanding the turn, in milliseconds.
    """

    intent: IntentPrediction
    entities: list[Entity]
    slots: dict[str, Entity]
    language: str
    versions: dict[str, str | None] = field(default_factory=dict)
    truncated: bool = False
    elapsed_ms: float = 0.0

    def to_explanation(self) -> dict[str, Any]:
        """Return the JSON-ready part of a reply's explanation."""
        return {
            **self.intent.to_dict(),
            "entities": [entity.to_dict() for entity in self.entities],
            "slots": {name: entity.value for name, entity in self.slots.items()},
            "language": self.language,
            "versions": self.versions,
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


class Understander:
    """Intent and entity understanding of customer turns with the active models and rules.

    Args:
        models: The active intent and entity models per language.
        settings: The ``nlu`` settings group.
        rules: Rule extractors; None builds them from ``settings``.
    """

    def __init__(
        self,
        models: NluModels,
        settings: NluSettings,
        rules: RuleEntityExtractor | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.timezone = ZoneInfo(settings.timezone) if settings.timezone else None
        self.rules = rules or build_rule_extractors(
            settings.id_patterns,
            enabled_types=settings.entity_types,
            numeric_date_order=settings.numeric_date_order,
            max_text_chars=settings.max_chars,
            timezone=self.timezone,
        )

    def understand(
        self, text: str, language: str, *, reference_time: datetime | None = None
    ) -> Understanding:
        """Return the intent, entities and slots of ``text``.

        Args:
            text: The customer's message as stored; entity offsets index into it.
            language: The turn's language ("en" or "zh-CN"), which picks the models.
            reference_time: Moment that relative dates count from, time-zone-aware.
                Defaults to now.

        Raises:
            ValueError: If ``reference_time`` has no time zone (raised by the rules).
        """
        started = time.perf_counter()
        normalized = normalize_text(text, self.settings.max_chars)
        intent, intent_version = self._classify(text, language)
        model_entities, ner_version = self._tag(text, language, normalized.has_content)
        rule_entities = self.rules.extract(text, reference_time) if normalized.has_content else []
        # Configured id types are fixed-shape too, so the rules win them over models.
        rule_types = FIXED_SHAPE_TYPES | self.rules.enabled_types
        priority = self.rules.type_priority
        entities = merge_entities(
            rule_entities, model_entities, rule_types=rule_types, type_priority=priority
        )
        understanding = Understanding(
            intent=intent,
            entities=entities,
            slots=slots_from_entities(entities, rule_types=rule_types, type_priority=priority),
            language=language,
            versions={"intent": intent_version, "ner": ner_version},
            truncated=normalized.truncated,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
        logger.debug(
            "Understood turn: intent=%s confidence=%.3f oos=%s entities=%d ms=%.1f",
            intent.intent,
            intent.confidence,
            intent.out_of_scope,
            len(entities),
            understanding.elapsed_ms,
        )
        return understanding

    def _classify(self, text: str, language: str) -> tuple[IntentPrediction, str | None]:
        loaded = self.models.get(ModelKind.INTENT, language)
        if loaded is None:
            return IntentPrediction(None, 0.0, True, 0.0, [], "no_model"), None
        try:
            return loaded.model.classify(text), loaded.version
        except Exception:  # noqa: BLE001 - a model failure must not fail the turn
            logger.exception("Intent model %s failed on a turn; skipping it", loaded.version)
            return IntentPrediction(None, 0.0, True, 0.0, [], "model_error"), loaded.version

    def _tag(self, text: str, language: str, has_content: bool) -> tuple[list[Entity], str | None]:
        loaded = self.models.get(ModelKind.NER, language)
        if loaded is None:
            return [], None
        if not has_content:
            return [], loaded.version
        try:
            return loaded.model.predict(text[: self.settings.max_chars]), loaded.version
        except Exception:  # noqa: BLE001 - a model failure must not fail the turn
            logger.exception("Entity model %s failed on a turn; skipping it", loaded.version)
            return [], loaded.version
