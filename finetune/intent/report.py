"""Evaluation of an intent classifier with the metrics that intent benchmarks report.

The report gives accuracy and macro F1 over all test turns, where out-of-scope counts as one
more class when the test data has it. It also gives precision, recall and F1 per intent, the
most confused pairs and a confusion matrix plot. For test data with out-of-scope turns, it
adds in-scope accuracy and out-of-scope recall and precision.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from nlu.types import OUT_OF_SCOPE

logger = logging.getLogger(__name__)

# Number of (gold, predicted) pairs listed under the most confused.
CONFUSED_PAIRS = 10
PLOT_NAME = "confusion_matrix.png"


def evaluate_decisions(
    gold: Sequence[str],
    predicted: Sequence[str],
    closed_set: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return the metrics of ``predicted`` decisions (intents or ``oos``) against ``gold``.

    Args:
        gold: The correct label of each turn; ``oos`` marks out-of-scope turns.
        predicted: The served decision: an intent, or ``oos`` when the threshold or the
            out-of-scope class rejected the turn.
        closed_set: The best in-scope intent of each turn with no threshold. Published
            results for data sets without out-of-scope turns (BANKING77, CAIS) use this
            closed-set accuracy, so the metrics give it beside the served one.

    Returns:
        JSON-ready metrics, rounded to four decimals.

    Raises:
        ValueError: If ``gold`` is empty.
    """
    gold_array = np.asarray(gold)
    predicted_array = np.asarray(predicted)
    if len(gold_array) == 0:
        raise ValueError(
            "evaluation needs at least one labelled test turn: add test or validation turns"
        )

    labels = sorted(set(gold_array) | set(predicted_array))
    report = classification_report(
        gold_array, predicted_array, labels=labels, output_dict=True, zero_division=0
    )
    per_intent = {
        label: {
            "precision": round(report[label]["precision"], 4),
            "recall": round(report[label]["recall"], 4),
            "f1": round(report[label]["f1-score"], 4),
            "support": int(report[label]["support"]),
        }
        for label in labels
    }
    confused = Counter(
        (gold_label, predicted_label)
        for gold_label, predicted_label in zip(gold_array, predicted_array, strict=True)
        if gold_label != predicted_label
    )
    gold_labels = sorted(set(gold_array))
    metrics: dict[str, Any] = {
        "examples": int(len(gold_array)),
        "accuracy": round(float(accuracy_score(gold_array, predicted_array)), 4),
        "macro_f1": _macro_f1(gold_array, predicted_array, gold_labels),
        "per_intent": per_intent,
        "most_confused": [
            {"gold": gold_label, "predicted": predicted_label, "count": count}
            for (gold_label, predicted_label), count in confused.most_common(CONFUSED_PAIRS)
        ],
    }

    if closed_set is not None:
        closed_array = np.asarray(closed_set)
        in_scope_rows = gold_array != OUT_OF_SCOPE
        if in_scope_rows.any():
            metrics["closed_set_accuracy"] = round(
                float((closed_array[in_scope_rows] == gold_array[in_scope_rows]).mean()), 4
            )
            metrics["closed_set_macro_f1"] = _macro_f1(
                gold_array[in_scope_rows],
                closed_array[in_scope_rows],
                sorted(set(gold_array[in_scope_rows])),
            )
        metrics["rejected_in_scope"] = int(
            ((predicted_array == OUT_OF_SCOPE) & in_scope_rows).sum()
        )

    is_oos = gold_array == OUT_OF_SCOPE
    if is_oos.any():
        in_scope = ~is_oos
        metrics["in_scope_accuracy"] = round(
            float((predicted_array[in_scope] == gold_array[in_scope]).mean()), 4
        )
        metrics["oos_recall"] = round(float((predicted_array[is_oos] == OUT_OF_SCOPE).mean()), 4)
        flagged = predicted_array == OUT_OF_SCOPE
        metrics["oos_precision"] = round(float(is_oos[flagged].mean()), 4) if flagged.any() else 0.0
    return metrics


def _macro_f1(gold: np.ndarray, predicted: np.ndarray, labels: list[str]) -> float:
    """Return macro F1 over the gold labels, so a label that is only predicted adds no F1 of 0."""
    return round(
        float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)), 4
    )


def plot_confusion_matrix(
    gold: Sequence[str], predicted: Sequence[str], path: Path, *, max_labels: int = 80
) -> Path:
    """Draw the confusion matrix into the PNG file ``path`` and return ``path``.

    The matrix covers the ``max_labels`` most frequent gold labels, plus ``oos`` when it
    was predicted.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frequent = [label for label, _ in Counter(gold).most_common(max_labels)]
    labels = sorted(set(frequent) | ({OUT_OF_SCOPE} & set(predicted)))
    matrix = confusion_matrix(gold, predicted, labels=labels)
    size = max(6.0, 0.18 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(f"Intent confusion matrix ({len(gold)} turns)")
    figure.colorbar(image, ax=axes, fraction=0.03)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(folder: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``eval_report.json`` and ``eval_report.md`` into ``folder`` and return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "eval_report.json"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    markdown_path = folder / "eval_report.md"
    markdown_path.write_text(_markdown(report), encoding="utf-8")
    logger.info("Wrote intent evaluation report to %s", markdown_path)
    return json_path, markdown_path


def _markdown(report: dict[str, Any]) -> str:
    test = report["test"]
    backend = f"- Backend: {report['backend']} ({report['backend_reason']})"
    if report.get("ensemble"):
        backend += f"; n-gram weight {report['ensemble']['charngram_weight']:.1f}"

    lines = [
        f"# Intent model {report.get('version') or ''}".rstrip(),
        "",
        backend,
        f"- Language: {report.get('language') or 'any'}",
        f"- Training turns: {report['data']['train']}, validation: {report['data']['validation']}"
        f", test: {report['data']['test']} ({report['data']['test_source']})",
        f"- Intents: {report['data']['intents']}; explicit out-of-scope class: "
        f"{'yes' if report['explicit_oos_class'] else 'no'}",
        f"- Temperature: {report['temperature']:.3f}; out-of-scope threshold: "
        f"{report['threshold']['threshold']:.4f} ({report['threshold']['method']})",
        f"- Training time: {report['training_seconds']:.1f} s",
        "",
        "## Test",
        "",
        f"- Accuracy: {test['accuracy']:.4f}",
        f"- Macro F1: {test['macro_f1']:.4f}",
    ]
    if "closed_set_accuracy" in test:
        lines += [
            f"- Without the out-of-scope threshold: accuracy {test['closed_set_accuracy']:.4f}, "
            f"macro F1 {test['closed_set_macro_f1']:.4f}; in-scope turns rejected by the "
            f"threshold: {test['rejected_in_scope']}",
        ]
    if "in_scope_accuracy" in test:
        lines += [
            f"- In-scope accuracy: {test['in_scope_accuracy']:.4f}",
            f"- Out-of-scope recall: {test['oos_recall']:.4f}, precision: "
            f"{test['oos_precision']:.4f}",
        ]
    lines += ["", "## Most confused pairs", "", "| gold | predicted | count |", "|---|---|---|"]
    lines += [
        f"| {pair['gold']} | {pair['predicted']} | {pair['count']} |"
        for pair in test["most_confused"]
    ]
    lines += [
        "",
        "## Per intent",
        "",
        "| intent | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
        f"{row['support']} |"
        for label, row in sorted(test["per_intent"].items())
    ]
    lines += ["", f"![confusion matrix]({PLOT_NAME})", ""]
    return "\n".join(lines)
