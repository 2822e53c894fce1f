"""Turn a stored bot reply's metadata into short, labelled lines for people to read.

The lines are plain text; the chat and the console escape them when they render them.
"""

from __future__ import annotations

import json
from typing import Any

# Explanation keys that have their own line; any other key goes under "other details".
_LISTED_KEYS = {
    "path",
    "reason",
    "handoff_reason",
    "nlu",
    "slots",
    "template",
    "stored_answers",
    "retrieved",
    "models",
    "thresholds",
}
# Passages listed per kind; the explanation stores every retrieved one.
MAX_PASSAGES_SHOWN = 3


def explanation_lines(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (catalogue key of the label, value) pairs describing one bot reply.

    Args:
        meta: The bot message's metadata as stored by the dialog manager: ``path``,
            ``citations``, ``timings_ms`` and ``explanation``.

    Returns:
        Lines in a fixed order, leaving out those with no value. The values are not
        escaped.
    """
    explanation: dict[str, Any] = meta.get("explanation") or {}
    nlu: dict[str, Any] = explanation.get("nlu") or {}
    values = [
        ("console.explain_path", str(explanation.get("path") or meta.get("path") or "")),
        ("console.explain_reason", str(explanation.get("reason") or "")),
        ("console.explain_handoff_reason", str(explanation.get("handoff_reason") or "")),
        ("console.explain_intent", format_intent(nlu)),
        ("console.explain_entities", _format_entities(nlu.get("entities") or [])),
        ("console.explain_slots", _format_pairs(explanation.get("slots") or {})),
        ("console.explain_template", _format_template(explanation.get("template") or {})),
        ("console.explain_citations", _format_passages(meta.get("citations") or [])),
        (
            "console.explain_stored_answers",
            _format_passages(explanation.get("stored_answers") or []),
        ),
        ("console.explain_retrieved", _format_passages(explanation.get("retrieved") or [])),
        ("console.explain_models", _format_pairs(explanation.get("models") or {})),
        ("console.explain_thresholds", _format_pairs(explanation.get("thresholds") or {})),
        ("console.explain_timings", _format_pairs(meta.get("timings_ms") or {})),
        ("console.explain_other", _format_other(explanation)),
    ]
    return [(key, value) for key, value in values if value]


def format_intent(nlu: dict[str, Any]) -> str:
    """Return "intent (confidence)", or "out of scope" with the confidence; empty without NLU."""
    if not nlu or nlu.get("confidence") is None:
        return ""
    confidence = f"{float(nlu['confidence']):.2f}"
    if nlu.get("out_of_scope") or not nlu.get("intent"):
        return f"out_of_scope ({confidence})"
    return f"{nlu['intent']} ({confidence})"


def _format_entities(entities: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{entity.get('type')}={entity.get('value')} ({entity.get('source')})"
        for entity in entities
    )


def _format_pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in values.items() if value is not None)


def _format_template(template: dict[str, Any]) -> str:
    if not template:
        return ""
    text = f"{template.get('id')} (intent {template.get('intent')})"
    if template.get("asked_slot"):
        text += f", asked for slot {template['asked_slot']}"
    if template.get("slots"):
        text += f", slots {_format_pairs(template['slots'])}"
    return text


def _format_passages(passages: list[dict[str, Any]]) -> str:
    shown = []
    for passage in passages[:MAX_PASSAGES_SHOWN]:
        score = float(passage.get("score", 0))
        shown.append(f"{passage.get('title')} ({passage.get('kind')}, score {score:.2f})")
    if len(passages) > MAX_PASSAGES_SHOWN:
        shown.append(f"+{len(passages) - MAX_PASSAGES_SHOWN}")
    return "; ".join(shown)


def _format_other(explanation: dict[str, Any]) -> str:
    rest = {key: value for key, value in explanation.items() if key not in _LISTED_KEYS}
    if not rest:
        return ""
    return json.dumps(rest, ensure_ascii=False, sort_keys=True, default=str)
