"""Write an evaluation run: Markdown report, JSON figures, per-turn JSONL and PNG plots.

Files written into the output folder:

- ``report.md``: the figures with one column per dialog model version;
- ``metrics.json``: every figure of the report and the run's settings;
- ``turns.jsonl``: one line per replayed turn and version, with both replies' texts;
- ``paths.png``, ``latency.png``, ``similarity.png``: reply paths, latency per path and
  the distribution of answer similarity per version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evaluation.metrics import Similarity
from evaluation.replay import TurnResult

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
TURNS_FILE = "turns.jsonl"
PLOT_FILES = {"paths": "paths.png", "latency": "latency.png", "similarity": "similarity.png"}
PATH_ORDER = ("template", "retrieved", "generated", "fallback", "handoff", "forwarded", "skipped")


def write_metrics(out_dir: Path, figures: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` and return its path."""
    path = out_dir / METRICS_FILE
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_turns(
    out_dir: Path,
    turns_by_version: Mapping[str, Sequence[TurnResult]],
    similarities_by_version: Mapping[str, Sequence[Similarity | None]],
) -> Path:
    """Write ``turns.jsonl``: each replayed turn with its version, reply and scores."""
    path = out_dir / TURNS_FILE
    with path.open("w", encoding="utf-8") as stream:
        for version, results in turns_by_version.items():
            similarities = similarities_by_version[version]
            for result, similarity in zip(results, similarities, strict=True):
                row = {"version": version, **asdict(result)}
                row["similarity"] = asdict(similarity) if similarity is not None else None
                stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_plots(
    out_dir: Path,
    versions: Mapping[str, Mapping[str, Any]],
    similarities_by_version: Mapping[str, Sequence[Similarity | None]],
) -> dict[str, Path]:
    """Draw the three plots and return their paths by name."""
    paths = {name: out_dir / file_name for name, file_name in PLOT_FILES.items()}
    _plot_paths(paths["paths"], versions)
    _plot_latency(paths["latency"], versions)
    _plot_similarity(paths["similarity"], similarities_by_version)
    return paths


def write_markdown(out_dir: Path, figures: Mapping[str, Any]) -> Path:
    """Write ``report.md`` from the figures of :func:`write_metrics` and return its path."""
    path = out_dir / REPORT_FILE
    path.write_text(render_markdown(figures), encoding="utf-8")
    logger.info("Wrote evaluation report %s", path)
    return path


def render_markdown(figures: Mapping[str, Any]) -> str:
    """Return the Markdown report of an evaluation run."""
    versions: Mapping[str, Mapping[str, Any]] = figures["versions"]
    names = list(versions)
    lines = [
        "# End-to-end evaluation",
        "",
        f"Replayed {figures['dialogs']} held-out dialogs ({figures['turns']} customer turns) "
        f"selected as: {figures['selection']['description']}.",
        "",
        _leakage_sentence(figures["excluded_past_answers"]),
        "",
        "## Figures",
        "",
        _table_header(["figure", *names]),
    ]
    lines += [_row(label, [getter(versions[name]) for name in names]) for label, getter in _ROWS]

    lines += ["", "## Paths and reasons", "", *_reason_lines(versions, names)]
    lines += ["", "## Latency per path (ms)", "", *_latency_lines(versions, names)]
    lines += ["", "## Per language", "", *_language_lines(versions, names)]
    lines += ["", "## Plots", ""]
    lines += [f"![{name}]({file_name})" for name, file_name in PLOT_FILES.items()]
    return "\n".join(lines) + "\n"


def _reason_lines(versions: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[str]:
    reasons = sorted({key for name in names for key in versions[name]["reasons"]})
    lines = [_table_header(["path: reason", *names])]
    for key in reasons:
        lines.append(_row(key, [str(versions[name]["reasons"].get(key, 0)) for name in names]))
    return lines


def _latency_lines(versions: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[str]:
    lines = [_table_header(["path", *names])]
    for path in _present_paths(versions):
        cells = [_latency_cell(versions[name]["latency_ms"]["by_path"].get(path)) for name in names]
        lines.append(_row(path, cells))
    return lines


def _leakage_sentence(excluded: Mapping[str, Any]) -> str:
    return (
        f"The held-out conversations' own past answers ({excluded['documents']} documents, "
        f"{excluded['chunks']} chunks) were excluded from retrieval during the replay, so no "
        "reply is a dialog's own agent answer looked up from the index. The row 'searches "
        "that would have returned a held-out answer' counts how often the filter acted."
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _intent_cell(figures: Mapping[str, Any]) -> str:
    intent = figures["intent"]
    if intent["status"] != "ok":
        return intent["status"]
    return f"{_percent(intent['accuracy'])} of {intent['turns']}"


def _latency_cell(figures: Mapping[str, Any] | None) -> str:
    if not figures or not figures["turns"]:
        return "n/a"
    return f"p50 {figures['p50']:.0f}, p95 {figures['p95']:.0f} (n={figures['turns']})"


_ROWS = [
    ("dialog model served", lambda v: ", ".join(v["dialog_versions"]) or "n/a"),
    ("dialogs", lambda v: str(v["dialogs"])),
    ("dialogs without handoff", lambda v: _percent(v["dialog_no_handoff_rate"])),
    ("customer turns sent", lambda v: str(v["turns"])),
    ("turns without handoff", lambda v: _percent(v["turn_no_handoff_rate"])),
    ("turns answered (template, retrieved, generated)", lambda v: _percent(v["answer_rate"])),
    ("fallback turns", lambda v: _percent(v["fallback_rate"])),
    ("turns skipped (rejected by the input guard)", lambda v: str(v["skipped_turns"])),
    (
        "answered turns scored against the agent reply",
        lambda v: str(v["similarity"]["answered"]["turns"]),
    ),
    ("cosine to the agent reply, answered turns", lambda v: _similarity(v, "answered", "cosine")),
    ("ROUGE-L to the agent reply, answered turns", lambda v: _similarity(v, "answered", "rouge_l")),
    ("cosine to the agent reply, all replies", lambda v: _similarity(v, "all_replies", "cosine")),
    ("ROUGE-L to the agent reply, all replies", lambda v: _similarity(v, "all_replies", "rouge_l")),
    ("intent accuracy (gold-labelled turns)", _intent_cell),
    ("latency, all turns (ms)", lambda v: _latency_cell(v["latency_ms"]["all"])),
    ("searches that would have returned a held-out answer", lambda v: str(v["blocked_searches"])),
    ("replay time (s)", lambda v: f"{v['replay_s']:.0f}"),
]


def _similarity(figures: Mapping[str, Any], group: str, metric: str) -> str:
    return _number(figures["similarity"][group][metric])


def _language_lines(versions: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[str]:
    languages = sorted({language for name in names for language in versions[name]["by_language"]})
    lines = [_table_header(["language: figure", *names])]
    for language in languages:
        per_version = [versions[name]["by_language"].get(language) for name in names]
        rows = [
            ("turns", lambda f: str(f["turns"])),
            ("turns without handoff", lambda f: _percent(f["turn_no_handoff_rate"])),
            ("turns answered", lambda f: _percent(f["answer_rate"])),
            ("cosine, answered", lambda f: _number(f["similarity"]["answered"]["cosine"])),
            ("ROUGE-L, answered", lambda f: _number(f["similarity"]["answered"]["rouge_l"])),
        ]
        for label, getter in rows:
            cells = [getter(figures) if figures else "n/a" for figures in per_version]
            lines.append(_row(f"{language}: {label}", cells))
    return lines


def _present_paths(versions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    present = {path for figures in versions.values() for path in figures["paths"]}
    return [path for path in PATH_ORDER if path in present]


def _table_header(cells: list[str]) -> str:
    return _row(cells[0], cells[1:]) + "\n" + "| " + " | ".join("---" for _ in cells) + " |"


def _row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label.replace("|", "\\|"), *cells]) + " |"


def _new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    # A Figure with its own Agg canvas leaves pyplot's global state and backend alone.
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_paths(path: Path, versions: Mapping[str, Mapping[str, Any]]) -> None:
    figure = _new_figure()
    axes = figure.add_subplot()
    names = list(versions)
    paths = _present_paths(versions)
    width = 0.8 / max(len(names), 1)
    for offset, name in enumerate(names):
        turns = sum(versions[name]["paths"].values()) or 1
        shares = [100 * versions[name]["paths"].get(p, 0) / turns for p in paths]
        positions = [i + offset * width for i in range(len(paths))]
        axes.bar(positions, shares, width=width, label=name)
    axes.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(paths))], paths)
    axes.set_ylabel("share of customer turns (%)")
    axes.set_title("Reply path per customer turn")
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def _plot_latency(path: Path, versions: Mapping[str, Mapping[str, Any]]) -> None:
    figure = _new_figure()
    axes = figure.add_subplot()
    names = list(versions)
    paths = _present_paths(versions)
    width = 0.8 / max(len(names), 1)
    for offset, name in enumerate(names):
        by_path = versions[name]["latency_ms"]["by_path"]
        p50 = [(by_path.get(p) or {}).get("p50") or 0.0 for p in paths]
        p95 = [(by_path.get(p) or {}).get("p95") or 0.0 for p in paths]
        positions = [i + offset * width for i in range(len(paths))]
        color = f"C{offset}"
        axes.bar(positions, p95, width=width, color=color, alpha=0.35)
        axes.bar(positions, p50, width=width, color=color, label=f"{name}: p50 dark, p95 light")
    axes.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(paths))], paths)
    axes.set_yscale("symlog", linthresh=10)
    axes.set_ylabel("latency per turn (ms)")
    axes.set_title("Turn latency per reply path")
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def _plot_similarity(
    path: Path, similarities_by_version: Mapping[str, Sequence[Similarity | None]]
) -> None:
    figure = _new_figure(9.0, 4.0)
    cosine_axes, rouge_axes = figure.subplots(1, 2)
    for name, similarities in similarities_by_version.items():
        scored = [s for s in similarities if s is not None]
        cosine_axes.hist(
            [s.cosine for s in scored], bins=20, range=(-0.2, 1.0), histtype="step", label=name
        )
        rouge_axes.hist(
            [s.rouge_l for s in scored], bins=20, range=(0.0, 1.0), histtype="step", label=name
        )
    cosine_axes.set_xlabel("cosine to the agent reply")
    rouge_axes.set_xlabel("ROUGE-L to the agent reply")
    for axes in (cosine_axes, rouge_axes):
        axes.set_ylabel("bot replies")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("Similarity of bot replies to the agents' real replies")
    figure.savefig(path, dpi=120)
