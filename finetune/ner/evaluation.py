"""Entity- and token-level scores of a tagger, and the ``eval_report`` files.

Entity scores come from seqeval in strict IOB2 mode (``mode="strict", scheme=IOB2``): an
entity counts as found only when its type and its exact first and last word match. Before
scoring, both gold and predicted tags go through ``nlu.decoding.repair_bio``, which rewrites
orphan ``I-`` tags the way the serving decoder reads them. The scored entities are therefore
exactly those that ``predict`` returns, and on repaired tags strict mode gives the same
numbers as seqeval's default mode and the CoNLL script ``conlleval``, which published slot
F1 figures use.

Token scores are scikit-learn's per-tag classification report over all words.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqeval.metrics import classification_report as entity_classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score
from sklearn.metrics import classification_report as token_classification_report

from nlu.decoding import repair_bio

logger = logging.getLogger(__name__)

REPORT_JSON = "eval_report.json"
REPORT_MARKDOWN = "eval_report.md"
ENTITY_MODE = "seqeval strict IOB2 on tags repaired by nlu.decoding.repair_bio"


def evaluate_tags(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Score predicted BIO tags against gold tags.

    Args:
        gold: The gold tags of each sentence.
        predicted: The predicted tags of each sentence, as many as in ``gold``.

    Returns:
        A JSON-ready dictionary: ``sentences``, ``entity_mode``, ``entity`` with ``micro``,
        ``macro`` and ``per_type`` precision, recall, F1 and support (gold entities), and
        ``token`` with ``accuracy`` and ``per_tag`` scores. Scores are fractions in 0..1.

    Raises:
        ValueError: If the sentence counts or a sentence's tag counts differ, or a tag is not
            BIO.
    """
    _validate_pairs(gold, predicted)
    gold_repaired = [repair_bio(tags) for tags in gold]
    predicted_repaired = [repair_bio(tags) for tags in predicted]

    entity = entity_classification_report(
        gold_repaired,
        predicted_repaired,
        mode="strict",
        scheme=IOB2,
        output_dict=True,
        zero_division=0,
    )
    per_type = {
        name: _rounded_scores(scores)
        for name, scores in sorted(entity.items())
        if not name.endswith(" avg")
    }

    flat_gold = [tag for tags in gold for tag in tags]
    flat_predicted = [tag for tags in predicted for tag in tags]
    token = token_classification_report(
        flat_gold, flat_predicted, output_dict=True, zero_division=0
    )
    return {
        "sentences": len(gold),
        "entity_mode": ENTITY_MODE,
        "entity": {
            "micro": _rounded_scores(entity["micro avg"]),
            "macro": _rounded_scores(entity["macro avg"]),
            "per_type": per_type,
        },
        "token": {
            "accuracy": round(float(accuracy_score(flat_gold, flat_predicted)), 4),
            "per_tag": {
                name: _rounded_scores(scores)
                for name, scores in token.items()
                if isinstance(scores, dict)
            },
        },
    }


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Return the entity-level micro F1 of ``evaluate_tags`` (0..1), without the reports."""
    return evaluate_tags(gold, predicted)["entity"]["micro"]["f1"]


def write_eval_report(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``report`` as ``eval_report.json`` and a readable ``eval_report.md``.

    Args:
        report: The dictionary ``train_tagger`` builds: ``evaluation`` from
            ``evaluate_tags`` plus ``backend``, ``evaluated_on`` and ``training``.
        folder: The tagger folder; it must exist.

    Returns:
        The paths of the JSON and Markdown files.
    """
    json_path = folder / REPORT_JSON
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    markdown_path = folder / REPORT_MARKDOWN
    markdown_path.write_text(_render_markdown(report), encoding="utf-8")
    logger.info("Wrote evaluation report json=%s markdown=%s", json_path, markdown_path)
    return json_path, markdown_path


def _validate_pairs(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(
            f"got {len(gold)} gold sentences but {len(predicted)} predicted ones: "
            "predict every evaluated sentence"
        )
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {index} has {len(gold_tags)} gold tags but {len(predicted_tags)} "
                "predicted ones: predict one tag per gold word"
            )


def _rounded_scores(scores: dict[str, float]) -> dict[str, float | int]:
    return {
        "precision": round(float(scores["precision"]), 4),
        "recall": round(float(scores["recall"]), 4),
        "f1": round(float(scores["f1-score"]), 4),
        "support": int(scores["support"]),
    }


def _render_markdown(report: dict[str, Any]) -> str:
    title = (
        f"# Entity tagger evaluation ({report.get('backend', '?')}, {report.get('language', '?')})"
    )
    evaluation = report.get("evaluation")
    if not evaluation:
        return f"{title}\n\nNo test or validation sentences were given, so nothing was scored.\n"

    micro = evaluation["entity"]["micro"]
    lines = [
        title,
        "",
        f"- Evaluated on: {report.get('evaluated_on', '?')}, {evaluation['sentences']} sentences",
        f"- Entity scores: {evaluation['entity_mode']}",
        f"- Entity micro precision {micro['precision']:.4f}, recall {micro['recall']:.4f}, "
        f"F1 {micro['f1']:.4f} over {micro['support']} gold entities",
        f"- Token accuracy {evaluation['token']['accuracy']:.4f}",
    ]
    training = report.get("training", {})
    if "train_s" in training:
        lines.append(f"- Training time {training['train_s']:.1f} s")
    lines += ["", "## Entities per type", "", *_score_table(evaluation["entity"]["per_type"])]
    lines += ["", "## Tokens per tag", "", *_score_table(evaluation["token"]["per_tag"])]
    return "\n".join(lines) + "\n"


def _score_table(rows: dict[str, dict[str, float | int]]) -> list[str]:
    table = ["| name | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name, scores in rows.items():
        table.append(
            f"| {name} | {scores['precision']:.4f} | {scores['recall']:.4f} | "
            f"{scores['f1']:.4f} | {scores['support']} |"
        )
    return table
