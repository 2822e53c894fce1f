"""Figures of one replay: handoffs, fallbacks, answer similarity, intent accuracy, latency.

Definitions (docs/eval.md has the long form):

- A turn is *handed off* when its path is ``handoff`` (the bot tells the customer that an
  agent takes over) or ``forwarded`` (the conversation already waits for an agent, so
  the bot stays silent). A dialog is handed off when any of its turns is.
- A turn is *answered* when its path is ``template``, ``retrieved`` or ``generated``.
- Similarity compares a bot reply with the agent's real reply to the same customer turn:
  the cosine of their sentence embeddings and ROUGE-L (``finetune.metrics.rouge_l``,
  words for Latin script and single characters for Chinese). Turns without a bot reply
  or without an agent reply are left out.
- Intent accuracy counts the turns with a gold label that an intent model served.
- Turns rejected by the input guard ("skipped") are left out of every share.

Example:
    >>> similarities = score_similarity(results, embedder)
    >>> summarize_results(results, similarities)["answer_rate"]
    0.61
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.replay import SKIPPED_PATH, TurnResult
from finetune.metrics import rouge_l
from retrieval.embedder import Embedder

logger = logging.getLogger(__name__)

ANSWER_PATHS = ("template", "retrieved", "generated")
HANDOFF_PATHS = ("handoff", "forwarded")
LATENCY_PERCENTILES = (50, 95)


@dataclass(frozen=True)
class Similarity:
    """Similarity of one bot reply to the agent's real reply.

    Attributes:
        cosine: Cosine of the two sentence embeddings, -1..1.
        rouge_l: ROUGE-L F-measure, 0..1.
    """

    cosine: float
    rouge_l: float


def score_similarity(results: Sequence[TurnResult], embedder: Embedder) -> list[Similarity | None]:
    """Return the similarity of each turn's reply to its reference, None where one is missing.

    All texts are embedded in one call, so the embedder's batching applies.
    """
    scored = [i for i, result in enumerate(results) if result.reply and result.reference]
    similarities: list[Similarity | None] = [None] * len(results)
    if not scored:
        return similarities

    replies = [results[i].reply for i in scored]
    references = [results[i].reference or "" for i in scored]
    vectors = embedder.embed(replies + references)
    cosines = np.sum(vectors[: len(scored)] * vectors[len(scored) :], axis=1)
    for position, index in enumerate(scored):
        similarities[index] = Similarity(
            cosine=float(cosines[position]),
            rouge_l=rouge_l(replies[position], references[position]),
        )
    logger.info("Scored reply similarity turns=%d", len(scored))
    return similarities


def summarize_results(
    results: Sequence[TurnResult], similarities: Sequence[Similarity | None]
) -> dict[str, Any]:
    """Return the figures of one replay as a JSON-ready dictionary.

    Shares are None when their denominator is 0. ``by_language`` repeats the turn
    figures per reply language.

    Raises:
        ValueError: If ``results`` and ``similarities`` differ in length.
    """
    if len(results) != len(similarities):
        raise ValueError(
            f"got {len(results)} results but {len(similarities)} similarities: pass the "
            "output of score_similarity for the same results"
        )
    summary = _turn_figures(results, similarities)
    summary.update(_dialog_figures(results))
    languages = sorted({result.language for result in results})
    summary["by_language"] = {
        language: _turn_figures(
            [r for r in results if r.language == language],
            [s for r, s in zip(results, similarities, strict=True) if r.language == language],
        )
        for language in languages
    }
    return summary


def _turn_figures(
    results: Sequence[TurnResult], similarities: Sequence[Similarity | None]
) -> dict[str, Any]:
    paths = Counter(result.path for result in results)
    sent = len(results) - paths[SKIPPED_PATH]
    handed_off = sum(paths[path] for path in HANDOFF_PATHS)
    answered = sum(paths[path] for path in ANSWER_PATHS)
    return {
        "turns": sent,
        "skipped_turns": paths[SKIPPED_PATH],
        "turns_without_handoff": sent - handed_off,
        "turn_no_handoff_rate": _share(sent - handed_off, sent),
        "answered_turns": answered,
        "answer_rate": _share(answered, sent),
        "fallback_turns": paths["fallback"],
        "fallback_rate": _share(paths["fallback"], sent),
        "similarity": _similarity_figures(results, similarities),
        "intent": _intent_figures(results),
        "latency_ms": _latency_figures(results),
        "paths": dict(sorted(paths.items())),
        "reasons": dict(sorted(Counter(f"{r.path}: {r.reason}" for r in results).items())),
    }


def _dialog_figures(results: Sequence[TurnResult]) -> dict[str, Any]:
    handed_off: dict[str, bool] = {}
    for result in results:
        handed_off[result.dialog] = handed_off.get(result.dialog, False) or (
            result.path in HANDOFF_PATHS
        )
    kept = sum(1 for value in handed_off.values() if not value)
    return {
        "dialogs": len(handed_off),
        "dialogs_without_handoff": kept,
        "dialog_no_handoff_rate": _share(kept, len(handed_off)),
    }


def _similarity_figures(
    results: Sequence[TurnResult], similarities: Sequence[Similarity | None]
) -> dict[str, Any]:
    by_path: dict[str, list[Similarity]] = defaultdict(list)
    for result, similarity in zip(results, similarities, strict=True):
        if similarity is not None:
            by_path[result.path].append(similarity)
    answered = [s for path in ANSWER_PATHS for s in by_path.get(path, [])]
    every_reply = [s for scores in by_path.values() for s in scores]
    return {
        "answered": _mean_similarity(answered),
        "all_replies": _mean_similarity(every_reply),
        "by_path": {path: _mean_similarity(scores) for path, scores in sorted(by_path.items())},
    }


def _mean_similarity(scores: Sequence[Similarity]) -> dict[str, Any]:
    if not scores:
        return {"turns": 0, "cosine": None, "rouge_l": None}
    return {
        "turns": len(scores),
        "cosine": float(np.mean([s.cosine for s in scores])),
        "rouge_l": float(np.mean([s.rouge_l for s in scores])),
    }


def _intent_figures(results: Sequence[TurnResult]) -> dict[str, Any]:
    labelled = [r for r in results if r.gold_intent is not None]
    served = [r for r in labelled if r.intent_version is not None]
    if not labelled:
        status = "no gold labels"
    elif not served:
        status = "no intent model"
    else:
        status = "ok"
    correct = sum(1 for r in served if r.predicted_intent == r.gold_intent)
    return {
        "status": status,
        "gold_turns": len(labelled),
        "turns": len(served),
        "accuracy": _share(correct, len(served)),
        "versions": sorted({r.intent_version for r in served if r.intent_version}),
    }


def _latency_figures(results: Sequence[TurnResult]) -> dict[str, Any]:
    by_path: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.path != SKIPPED_PATH:
            by_path[result.path].append(result.latency_ms)
    every_turn = [value for values in by_path.values() for value in values]
    return {
        "all": _percentiles(every_turn),
        "by_path": {path: _percentiles(values) for path, values in sorted(by_path.items())},
    }


def _percentiles(values: Sequence[float]) -> dict[str, Any]:
    figures: dict[str, Any] = {"turns": len(values)}
    for percentile in LATENCY_PERCENTILES:
        figures[f"p{percentile}"] = float(np.percentile(values, percentile)) if values else None
    return figures


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
