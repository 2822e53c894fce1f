"""Write the evaluation of a fine-tuned model against its base model as files.

``write_report`` writes three files into one folder:

- ``eval_report.json``: the metrics of both models, their deltas and every example's
  answers and scores, for scripts;
- ``loss_curves.png``: training and validation loss against the optimizer step;
- ``eval_report.md``: the metrics table, the loss plot and the questions whose answers
  differ most, for people.

Example:
    >>> files = write_report(Path("runs/a/eval"), compare(tuned, base),
    ...                      train_report=json.loads(Path("runs/a/train_report.json").read_text()),
    ...                      dataset_stats=None)
    >>> files.markdown
    PosixPath('runs/a/eval/eval_report.md')
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from finetune.evaluation import HIGHER_IS_BETTER, Comparison, ModelScores

logger = logging.getLogger(__name__)

MARKDOWN_FILE = "eval_report.md"
JSON_FILE = "eval_report.json"
PLOT_FILE = "loss_curves.png"
_METRIC_LABELS = {
    "perplexity": "Perplexity",
    "rouge_l": "ROUGE-L",
    "token_f1": "Token F1",
    "embedding_similarity": "Embedding similarity",
}


@dataclass
class ReportFiles:
    """Paths of the files that ``write_report`` wrote.

    Attributes:
        markdown: The human-readable report.
        json: All metrics and per-example rows.
        plot: The loss curves, or None when there was no loss history to plot.
    """

    markdown: Path
    json: Path
    plot: Path | None


def write_report(
    out_dir: Path,
    comparison: Comparison,
    *,
    train_report: Mapping[str, Any] | None,
    dataset_stats: Mapping[str, Any] | None,
) -> ReportFiles:
    """Write eval_report.json, eval_report.md and, with a loss history, loss_curves.png.

    Existing files of these names in ``out_dir`` are replaced. A loss_curves.png left
    by an earlier report is deleted when there is no loss history, so that the folder
    never shows curves of another run.

    Args:
        out_dir: Output folder, created if missing.
        comparison: The fine-tuned model (candidate) against the base model (baseline).
        train_report: Contents of the run's train_report.json, with
            "train_loss_history" and "eval_loss_history" as lists of [step, loss];
            None when there is no training report.
        dataset_stats: Contents of the dataset's stats.json, copied into the JSON
            report; its "pairs" per split are listed in the Markdown. None leaves both out.

    Returns:
        The paths written.

    Raises:
        ValueError: If a loss history is not a list of [step, loss] pairs.
        OSError: If a file cannot be written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    train_history, eval_history = _loss_histories(train_report)

    plot_path: Path | None = out_dir / PLOT_FILE
    if train_history or eval_history:
        _plot_losses(plot_path, train_history, eval_history)
    else:
        plot_path.unlink(missing_ok=True)
        plot_path = None

    json_path = out_dir / JSON_FILE
    values = _json_values(comparison, train_report, dataset_stats)
    json_path.write_text(
        json.dumps(values, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )

    markdown_path = out_dir / MARKDOWN_FILE
    markdown = _render_markdown(comparison, train_report, dataset_stats, plot_path)
    markdown_path.write_text(markdown, encoding="utf-8")

    logger.info("Wrote the evaluation report to %s", out_dir)
    return ReportFiles(markdown=markdown_path, json=json_path, plot=plot_path)


def _loss_histories(
    train_report: Mapping[str, Any] | None,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    if train_report is None:
        return [], []
    return (
        _parse_history(train_report, "train_loss_history"),
        _parse_history(train_report, "eval_loss_history"),
    )


def _parse_history(train_report: Mapping[str, Any], key: str) -> list[tuple[int, float]]:
    entries = train_report.get(key) or []
    try:
        return [(int(step), float(loss)) for step, loss in entries]
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"invalid {key} in the training report: expected a list of [step, loss] pairs "
            f"as train_report.json has them ({error})"
        ) from error


def _plot_losses(
    path: Path,
    train_history: Sequence[tuple[int, float]],
    eval_history: Sequence[tuple[int, float]],
) -> None:
    # A Figure with its own Agg canvas leaves pyplot's global state and backend alone.
    figure = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train_history:
        steps, losses = zip(*train_history, strict=True)
        axes.plot(steps, losses, label="training loss", linewidth=1)
    if eval_history:
        steps, losses = zip(*eval_history, strict=True)
        axes.plot(steps, losses, label="validation loss", marker="o")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss (mean cross-entropy per answer token)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def _json_values(
    comparison: Comparison,
    train_report: Mapping[str, Any] | None,
    dataset_stats: Mapping[str, Any] | None,
) -> dict[str, Any]:
    candidate, baseline = comparison.candidate, comparison.baseline
    metrics = {
        metric: {
            "baseline": getattr(baseline, metric),
            "candidate": getattr(candidate, metric),
            "delta": comparison.deltas[metric],
            "higher_is_better": higher_is_better,
        }
        for metric, higher_is_better in HIGHER_IS_BETTER.items()
    }
    examples = [
        {
            "index": index,
            "question": baseline_score.question,
            "reference": baseline_score.reference,
            "baseline": _example_values(baseline_score),
            "candidate": _example_values(candidate_score),
        }
        for index, (baseline_score, candidate_score) in enumerate(
            zip(baseline.examples, candidate.examples, strict=True)
        )
    ]
    values = {
        "test_pairs": len(baseline.examples),
        "baseline": _model_values(baseline),
        "candidate": _model_values(candidate),
        "metrics": metrics,
        "top_differences": [difference.index for difference in comparison.top_differences],
        "examples": examples,
        "train_report": dict(train_report) if train_report is not None else None,
        "dataset_stats": dict(dataset_stats) if dataset_stats is not None else None,
    }
    return _replace_non_finite(values)


def _model_values(scores: ModelScores) -> dict[str, Any]:
    return {"name": scores.name, "model_path": str(scores.model_path), "seconds": scores.seconds}


def _example_values(score: Any) -> dict[str, Any]:
    values = asdict(score)
    del values["question"], values["reference"]
    return values


def _replace_non_finite(value: Any) -> Any:
    """Replace infinite and NaN floats with None, because JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _replace_non_finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_non_finite(item) for item in value]
    return value


def _render_markdown(
    comparison: Comparison,
    train_report: Mapping[str, Any] | None,
    dataset_stats: Mapping[str, Any] | None,
    plot_path: Path | None,
) -> str:
    candidate, baseline = comparison.candidate, comparison.baseline
    lines = [
        "# Evaluation of the fine-tuned model",
        "",
        f"- Base model: {baseline.name} (`{baseline.model_path}`), evaluated in "
        f"{baseline.seconds:.1f} s",
        f"- Fine-tuned model: {candidate.name} (`{candidate.model_path}`), evaluated in "
        f"{candidate.seconds:.1f} s",
        f"- Test pairs: {len(baseline.examples)}",
    ]
    lines += _dataset_lines(dataset_stats)
    lines += ["", "## Metrics", "", *_metric_table(comparison), ""]
    lines += _training_lines(train_report, plot_path)
    lines += ["", *_difference_lines(comparison)]
    return "\n".join(lines) + "\n"


def _dataset_lines(dataset_stats: Mapping[str, Any] | None) -> list[str]:
    pairs = dataset_stats.get("pairs") if dataset_stats is not None else None
    if not isinstance(pairs, Mapping) or not pairs:
        return []
    counts = ", ".join(f"{count} {split}" for split, count in pairs.items())
    return [f"- Dataset pairs per split: {counts}"]


def _metric_table(comparison: Comparison) -> list[str]:
    rows = [
        "| Metric | Base | Fine-tuned | Delta | Better |",
        "|---|---:|---:|---:|---|",
    ]
    for metric, higher_is_better in HIGHER_IS_BETTER.items():
        label = _METRIC_LABELS[metric]
        label += " (higher is better)" if higher_is_better else " (lower is better)"
        delta = comparison.deltas[metric]
        rows.append(
            f"| {label} | {_format_number(getattr(comparison.baseline, metric))} "
            f"| {_format_number(getattr(comparison.candidate, metric))} "
            f"| {_format_number(delta, signed=True)} | {_better_model(delta, higher_is_better)} |"
        )
    return rows


def _better_model(delta: float, higher_is_better: bool) -> str:
    if not math.isfinite(delta):
        return "n/a"
    if delta == 0:
        return "tie"
    return "fine-tuned" if (delta > 0) == higher_is_better else "base"


def _format_number(value: float, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _training_lines(train_report: Mapping[str, Any] | None, plot_path: Path | None) -> list[str]:
    lines = ["## Training", ""]
    if train_report is None:
        return [*lines, "No training report was given, so there are no loss curves."]
    steps = train_report.get("steps")
    seconds = train_report.get("train_seconds")
    if steps is not None and seconds is not None:
        lines += [f"{steps} optimizer steps in {float(seconds):.1f} s.", ""]
    if plot_path is None:
        return [*lines, "The training report has no loss history, so there are no loss curves."]
    return [*lines, f"![Training and validation loss per optimizer step]({plot_path.name})"]


def _difference_lines(comparison: Comparison) -> list[str]:
    differences = comparison.top_differences
    if not differences:
        return [
            "## Questions where the answers differ most",
            "",
            "The two models gave the same answer to every test question.",
        ]
    lines = [
        f"## The {len(differences)} questions where the answers differ most",
        "",
        "Ordered by the absolute difference of ROUGE-L, then of embedding similarity. The # "
        "column is the pair's position among the evaluated test pairs, counted from 1.",
        "",
        "| # | Question | Reference | Base answer | Fine-tuned answer | ROUGE-L base "
        "| ROUGE-L fine-tuned |",
        "|---:|---|---|---|---|---:|---:|",
    ]
    for difference in differences:
        baseline, candidate = difference.baseline, difference.candidate
        cells = [
            str(difference.index + 1),
            _escape_cell(baseline.question),
            _escape_cell(baseline.reference),
            _escape_cell(baseline.prediction),
            _escape_cell(candidate.prediction),
            _format_number(baseline.rouge_l),
            _format_number(candidate.rouge_l),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _escape_cell(text: str) -> str:
    """Make ``text`` safe inside one Markdown table cell, line breaks shown as <br>."""
    text = html.escape(text.replace("\\", "\\\\"), quote=False).replace("|", "\\|")
    return "<br>".join(line.strip() for line in text.strip().splitlines())
