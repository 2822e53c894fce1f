"""Run an end-to-end evaluation: select held-out dialogs, replay them per version, report.

Example:
    >>> config = EvalConfig(out_dir=Path("eval-run"), versions=("base", "dialog-20261204T2300Z"))
    >>> result = run_evaluation(Settings(), config)
    >>> result.figures["versions"]["base"]["answer_rate"]
    0.61
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.dialog_manager import DialogManager
from bot.generation.base import Generator
from bot.model_switch import ServedModel
from bot.runtime import BotRuntime, build_runtime, open_database
from evaluation.errors import NoHeldOutDialogsError, OutputFolderError
from evaluation.held_out import HeldOutDialog, HeldOutSelection, select_held_out_dialogs
from evaluation.leakage import HeldOutExcludingRetriever, find_past_answer_documents
from evaluation.metrics import Similarity, score_similarity, summarize_results
from evaluation.replay import TurnResult, replay_dialogs
from evaluation.report import write_markdown, write_metrics, write_plots, write_turns
from evaluation.served_models import (
    BASE_VERSION,
    PinnedModelSwitch,
    active_version_name,
    check_versions,
    load_served_model,
)
from retrieval.embedder import SentenceTransformerEmbedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """Options of one evaluation run.

    Attributes:
        out_dir: Folder for the report, figures and plots; created when missing. Files
            of an earlier run in it are replaced.
        selection: Which held-out dialogs to replay.
        versions: Dialog model versions to compare: "base" or registry version names.
            Empty evaluates the version that is active now.
        keep: Keep the replay conversations (channel "eval") instead of deleting them.
    """

    out_dir: Path
    selection: HeldOutSelection = field(default_factory=HeldOutSelection)
    versions: tuple[str, ...] = ()
    keep: bool = False


@dataclass(frozen=True)
class _VersionRun:
    results: list[TurnResult]
    similarities: list[Similarity | None]
    summary: dict[str, Any]


@dataclass(frozen=True)
class EvalResult:
    """Files and figures of a finished run."""

    report: Path
    metrics: Path
    figures: dict[str, Any]


def run_evaluation(
    settings: Settings,
    config: EvalConfig,
    *,
    embedder: SentenceTransformerEmbedder | None = None,
    base_generator: Generator | None = None,
) -> EvalResult:
    """Replay the held-out dialogs with each version and write the report.

    The options are checked before any model loads. The active dialog version is never
    changed, and unless ``config.keep`` the replay conversations are deleted again,
    also when a turn fails.

    Args:
        settings: Runtime settings of the supportbot home to evaluate.
        config: What to replay and where to write.
        embedder: An already loaded embedder to reuse.
        base_generator: An already loaded base dialog model to reuse for "base".

    Returns:
        The report paths and the figures written to ``metrics.json``.

    Raises:
        OutputFolderError: If ``config.out_dir`` cannot be created or written.
        UnknownVersionError: If a version cannot be served.
        NoHeldOutDialogsError: If no stored conversation matches the selection.
        storage.errors.DatabaseUnavailableError: If the database cannot be reached.
        bot.generation.base.ModelUnavailableError: If a model cannot be loaded.
    """
    started = time.perf_counter()
    prepare_output_folder(config.out_dir)
    versions, dialogs = _check_run(settings, config)

    runtime = build_runtime(settings, embedder=embedder, generator=base_generator)
    try:
        excluded = find_past_answer_documents(
            runtime.session_factory, [dialog.external_id for dialog in dialogs]
        )
        retriever = HeldOutExcludingRetriever(runtime.retriever, excluded)
        label = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        runs = {
            name: _evaluate_version(
                runtime, retriever, dialogs, name, f"{label}:{name}", config, base_generator
            )
            for name in versions
        }
        embedder_name = runtime.embedder.name
    finally:
        runtime.close()

    figures = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "selection": {**asdict(config.selection), "description": config.selection.describe()},
        "dialogs": len(dialogs),
        "turns": sum(len(dialog.turns) for dialog in dialogs),
        "excluded_past_answers": {
            "documents": len(excluded.document_ids),
            "chunks": excluded.chunk_count,
        },
        "models": {"embedding": embedder_name, "base_dialog_model": settings.generation.model},
        "versions": {name: run.summary for name, run in runs.items()},
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    metrics_path = write_metrics(config.out_dir, figures)
    similarities = {name: run.similarities for name, run in runs.items()}
    write_turns(config.out_dir, {name: run.results for name, run in runs.items()}, similarities)
    write_plots(config.out_dir, figures["versions"], similarities)
    report_path = write_markdown(config.out_dir, figures)
    logger.info(
        "Evaluation finished dialogs=%d versions=%s elapsed_s=%.0f out=%s",
        len(dialogs),
        ",".join(versions),
        figures["elapsed_s"],
        config.out_dir,
    )
    return EvalResult(report=report_path, metrics=metrics_path, figures=figures)


def prepare_output_folder(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and check that files can be written into it.

    Raises:
        OutputFolderError: If it is a file, cannot be created or is not writable.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(
            f"output folder {out_dir} is an existing file: give a folder path with --out"
        )
    probe = out_dir / ".write-check"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        raise OutputFolderError(
            f"cannot write into the output folder {out_dir}: {error.strerror or error}; "
            "choose another folder with --out"
        ) from error


def build_replay_manager(
    runtime: BotRuntime, retriever: HeldOutExcludingRetriever, served: ServedModel
) -> DialogManager:
    """Return a dialog manager like the runtime's, pinned to ``served`` and ``retriever``."""
    return DialogManager(
        session_factory=runtime.session_factory,
        # Duck-typed: the dialog manager calls only retrieve() and embedder.
        retriever=retriever,  # type: ignore[arg-type]
        models=PinnedModelSwitch(runtime.session_factory, served),
        turn_lock=runtime.dialog_manager.turn_lock,
        settings=runtime.settings,
        understander=runtime.dialog_manager.understander,
        templates=runtime.dialog_manager.templates,
    )


def _check_run(settings: Settings, config: EvalConfig) -> tuple[list[str], list[HeldOutDialog]]:
    """Resolve the versions and select the dialogs before any model loads."""
    engine, session_factory = open_database(settings)
    try:
        versions = list(config.versions) or [active_version_name(session_factory)]
        check_versions(session_factory, versions)
        dialogs = select_held_out_dialogs(session_factory, config.selection)
    finally:
        engine.dispose()
    if not dialogs:
        raise NoHeldOutDialogsError(
            f"no held-out dialogs found for: {config.selection.describe()}. Import dialogs "
            "with 'supportbot import-dialogs', raise --test, or drop the --language filter"
        )
    return versions, dialogs


def _evaluate_version(
    runtime: BotRuntime,
    retriever: HeldOutExcludingRetriever,
    dialogs: list[HeldOutDialog],
    name: str,
    label: str,
    config: EvalConfig,
    base_generator: Generator | None,
) -> _VersionRun:
    """Replay all dialogs with one version and score the replies."""
    started = time.perf_counter()
    serving = runtime.models.current
    if (serving.version or BASE_VERSION) == name:
        served, owns_generator = serving, False
    else:
        served = load_served_model(
            runtime.settings, runtime.session_factory, name, base_generator=base_generator
        )
        owns_generator = served.generator is not base_generator
    retriever.blocked_searches = 0
    try:
        manager = build_replay_manager(runtime, retriever, served)
        results = replay_dialogs(manager, dialogs, label=label, keep=config.keep)
    finally:
        if owns_generator:
            served.generator.close()

    similarities = score_similarity(results, runtime.embedder)
    summary = summarize_results(results, similarities)
    summary["dialog_versions"] = sorted({r.dialog_version for r in results if r.dialog_version})
    summary["blocked_searches"] = retriever.blocked_searches
    summary["replay_s"] = round(time.perf_counter() - started, 1)
    logger.info(
        "Evaluated version %s turns=%d answer_rate=%s replay_s=%.0f",
        name,
        summary["turns"],
        summary["answer_rate"],
        summary["replay_s"],
    )
    return _VersionRun(results, similarities, summary)
