"""``supportbot eval``: replay held-out real dialogs through the bot and report the figures."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ui.cli import app
from ui.cli_support import fail, load_settings

logger = logging.getLogger(__name__)


@app.command("eval")
def evaluate(
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder; default <home>/eval/<UTC time>. Files of an earlier run "
            "there are replaced."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Replay at most this many held-out dialogs.")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Only dialogs in this language: en or zh-CN.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help="Only dialogs whose import source starts with this, e.g. sgd."),
    ] = None,
    version: Annotated[
        list[str] | None,
        typer.Option(
            help="Dialog model version to replay with: 'base' or a registry version; repeat "
            "to compare several. Default: the active version."
        ),
    ] = None,
    validation: Annotated[
        float, typer.Option(help="Share of conversations for validation, as in finetune.")
    ] = 0.1,
    test: Annotated[
        float, typer.Option(help="Share of conversations for test, as in finetune; replayed.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split, as in finetune.")] = 42,
    keep: Annotated[
        bool, typer.Option(help="Keep the replay conversations (channel 'eval').")
    ] = False,
) -> None:
    """Replay held-out dialogs with each dialog model version and write a report.

    The held-out dialogs are the stored closed conversations that `supportbot finetune`
    puts in its test split with the same --validation, --test and --seed. Their own past
    answers are excluded from retrieval during the replay, and the replay conversations
    are deleted afterwards unless --keep is given.
    """
    settings = load_settings()
    from bot.generation.base import GenerationError
    from evaluation.errors import EvaluationError, NoHeldOutDialogsError
    from evaluation.held_out import HeldOutSelection
    from evaluation.runner import EvalConfig, run_evaluation
    from retrieval.errors import RetrievalError
    from storage.errors import StorageError

    try:
        selection = HeldOutSelection(
            validation=validation,
            test=test,
            seed=seed,
            language=language,
            source=source,
            limit=limit,
        )
    except ValueError as error:
        raise fail(f"Invalid selection: {error}", code=2) from error
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    config = EvalConfig(
        out_dir=out or settings.home / "eval" / stamp,
        selection=selection,
        versions=tuple(version or ()),
        keep=keep,
    )

    try:
        result = run_evaluation(settings, config)
    except NoHeldOutDialogsError as error:
        raise fail(f"Nothing to evaluate: {error}.", code=1) from error
    except EvaluationError as error:
        raise fail(f"Invalid option: {error}.", code=2) from error
    except (GenerationError, RetrievalError, StorageError, OSError) as error:
        raise fail(f"Evaluation failed: {error}") from error

    figures = result.figures
    typer.echo(f"Replayed {figures['dialogs']} dialogs ({figures['turns']} customer turns).")
    for name, summary in figures["versions"].items():
        typer.echo(f"{name}: {_summary_line(summary)}")
    typer.echo(f"Report: {result.report}")


def _summary_line(summary: dict) -> str:
    answered = summary["similarity"]["answered"]
    parts = [
        f"dialogs without handoff {_percent(summary['dialog_no_handoff_rate'])}",
        f"turns answered {_percent(summary['answer_rate'])}",
        f"fallback {_percent(summary['fallback_rate'])}",
        f"cosine {_number(answered['cosine'])}",
        f"ROUGE-L {_number(answered['rouge_l'])}",
    ]
    return ", ".join(parts)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
