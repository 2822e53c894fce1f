"""The ``supportbot`` command line: parse arguments, build settings, call one library function."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from bot.config import Settings

logger = logging.getLogger(__name__)

# Settings whose values never appear in error messages.
_SECRET_SETTINGS = frozenset({"api_key", "database_url"})

app = typer.Typer(
    name="supportbot",
    help="Self-hosted customer-service chatbot: import dialogs, index documents, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _load_settings(**overrides: object) -> Settings:
    """Read settings and configure logging for a command."""
    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**values)
    except ValidationError as error:
        typer.echo(f"Invalid configuration:\n{_describe_settings_error(error)}", err=True)
        raise typer.Exit(2) from error
    except (ValueError, FileNotFoundError) as error:
        typer.echo(f"Invalid configuration: {error}", err=True)
        raise typer.Exit(2) from error
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic and httpx log every migration step and request at INFO.
    # faiss logs at INFO each optional CPU-specific build that it cannot import.
    for noisy in ("alembic", "httpx", "faiss"):
        logging.getLogger(noisy).setLevel(
            max(logging.WARNING, logging.getLevelName(settings.log_level))
        )
    # Tokenizers warn about forked processes when their thread pool is enabled.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return settings


def _describe_settings_error(error: ValidationError) -> str:
    """Return one line per invalid setting, naming its environment variable.

    Pydantic's own message repeats the input, and for a check across fields the input
    is every setting, API key included. So a value is shown only for a single field
    that is not secret.
    """
    lines = []
    for problem in error.errors(include_url=False):
        location = [str(part) for part in problem["loc"]]
        message = problem["msg"].removeprefix("Value error, ")
        if not location:
            lines.append(f"  {message}")
            continue
        name = ".".join(location)
        variable = "SUPPORTBOT_" + "__".join(location).upper()
        value = problem.get("input")
        is_value_shown = (
            isinstance(value, str | int | float) and location[-1] not in _SECRET_SETTINGS
        )
        suffix = f" (got {value!r})" if is_value_shown else ""
        lines.append(f"  {name} ({variable}): {message}{suffix}")
    return "\n".join(lines)


def _check_paths_exist(paths: list[Path], what: str) -> None:
    """Exit with a message before any work when a path on the command line is missing."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise _fail(f"{what} not found: {', '.join(missing)}. Check the path and try again.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind; default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; default 8000.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Serve the REST API and the customer chat from one process."""
    settings = _load_settings(host=host, port=port)
    from ui.serve import run_server

    run_server(settings, workers=workers)


@app.command("import-dialogs")
def import_dialogs(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of dialogs.")],
    format: Annotated[
        str | None,
        typer.Option("--format", help="jsonl, csv, sgd or crosswoz; detected when omitted."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option(help="Skip malformed conversations instead of stopping.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Import at most this many conversations.")
    ] = None,
) -> None:
    """Import historical support conversations; re-importing adds nothing twice."""
    settings = _load_settings()
    _check_paths_exist(paths, "Dialog file or folder")
    from bot.runtime import open_database
    from storage.dialog_import import DialogFormatError
    from storage.dialog_import import import_dialogs as run_import
    from storage.errors import StorageError

    engine, session_factory = open_database(settings)
    try:
        report = run_import(
            session_factory, paths, format=format, skip_invalid=skip_invalid, limit=limit
        )
    except DialogFormatError as error:
        # The library's message names its skip_invalid argument, not this command's flag.
        raise _fail(
            f"Import failed: {error.problem}. Fix the record and import again, or run with "
            "--skip-invalid to skip invalid records and count them."
        ) from error
    except (StorageError, ValueError, OSError) as error:
        raise _fail(f"Import failed: {error}") from error
    finally:
        engine.dispose()
    typer.echo(report.summary())


@app.command()
def index(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Documents or folders: .md .txt .html, FAQ .csv/.jsonl."),
    ] = None,
    past_answers: Annotated[
        bool, typer.Option(help="Also index customer questions with their agent answers.")
    ] = True,
) -> None:
    """Build or update the knowledge-base index; only new or changed documents are embedded."""
    settings = _load_settings()
    _check_paths_exist(paths or [], "Knowledge file or folder")
    from bot.runtime import build_embedder, open_database
    from retrieval.errors import RetrievalError
    from retrieval.indexer import KnowledgeIndexer

    engine, session_factory = open_database(settings)
    try:
        indexer = KnowledgeIndexer(
            session_factory,
            build_embedder(settings),
            settings.index_dir,
            chunk_max_chars=settings.retrieval.chunk_max_chars,
            chunk_overlap_chars=settings.retrieval.chunk_overlap_chars,
        )
        if paths:
            typer.echo(indexer.index_paths(paths).summary())
        if past_answers:
            report = indexer.index_past_answers(
                min_answer_words=settings.retrieval.past_answer_min_words
            )
            typer.echo(report.summary(subject="Indexed past answers of conversations"))
    except (RetrievalError, OSError) as error:
        raise _fail(f"Indexing failed: {error}") from error
    finally:
        engine.dispose()


@app.command()
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Local copy of the public datasets; downloaded when omitted."),
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the server when the data is ready.")
    ] = True,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
) -> None:
    """Load a slice of real public support data, index it, and serve the bot."""
    settings = _load_settings(data_dir=data_dir, host=host, port=port)
    from ui.demo.setup import DemoSetupError, prepare_demo

    try:
        summary = prepare_demo(settings)
    except DemoSetupError as error:
        raise _fail(f"Demo set-up failed: {error}") from error
    typer.echo(summary)
    if serve_after:
        from ui.serve import run_server

        run_server(settings, workers=1)


finetune_app = typer.Typer(
    help="Fine-tuning: build datasets from stored conversations.", no_args_is_help=True
)
app.add_typer(finetune_app, name="finetune")


@finetune_app.command("dataset")
def finetune_dataset(
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder; default <home>/finetune/datasets/<UTC time>."),
    ] = None,
    created_from: Annotated[
        datetime | None, typer.Option("--from", help="Conversations created at or after (UTC).")
    ] = None,
    created_to: Annotated[
        datetime | None, typer.Option("--to", help="Conversations created before (UTC).")
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option(help="Only these channels; repeat for several.")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (open, closed).")
    ] = None,
    context_turns: Annotated[int, typer.Option(min=0, help="Earlier turns per pair.")] = 4,
    validation: Annotated[float, typer.Option(help="Share of conversations for validation.")] = 0.1,
    test: Annotated[float, typer.Option(help="Share of conversations for test.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 42,
    duplicate_similarity: Annotated[
        float,
        typer.Option(help="Cosine from which questions count as duplicates; 1 disables merging."),
    ] = 0.9,
) -> None:
    """Build redacted (context, question -> answer) pairs as train/validation/test JSONL."""
    settings = _load_settings()
    from bot.runtime import build_embedder, open_database
    from finetune.build import DatasetConfig, build_dataset
    from finetune.pairs import ConversationFilter

    try:
        conversation_filter = ConversationFilter(
            created_from=created_from,
            created_to=created_to,
            channels=tuple(channel or ()),
            statuses=tuple(status or ()),
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        config = DatasetConfig(
            out_dir=out or settings.home / "finetune" / "datasets" / stamp,
            conversation_filter=conversation_filter,
            context_turns=context_turns,
            validation=validation,
            test=test,
            seed=seed,
            duplicate_similarity=duplicate_similarity,
        )
    except ValueError as error:
        raise _fail(f"Invalid selection: {error}", code=2) from error

    engine, session_factory = open_database(settings)
    try:
        embedder = build_embedder(settings) if duplicate_similarity < 1.0 else None
        stats = build_dataset(session_factory, config, embedder=embedder)
    except (ValueError, OSError) as error:
        raise _fail(f"Building the dataset failed: {error}") from error
    finally:
        engine.dispose()
    typer.echo(
        f"Wrote {config.out_dir}: pairs {stats.pairs}, duplicates removed "
        f"{stats.duplicates_removed}, dropped {stats.dropped}, redacted {stats.redactions}."
    )


@finetune_app.command("train")
def finetune_train(
    dataset: Annotated[Path, typer.Argument(help="Folder written by `finetune dataset`.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder; default <home>/finetune/runs/<UTC time>."),
    ] = None,
    method: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Epochs when --max-steps is not given.")] = 3.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    max_seq_len: Annotated[int, typer.Option(help="Longest example in tokens.")] = 1024,
    batch_tokens: Annotated[
        int, typer.Option(help="Tokens per packed row (per device batch).")
    ] = 4096,
    seed: Annotated[int, typer.Option(help="Seed of the run.")] = 42,
) -> None:
    """Fine-tune the configured dialog model on a dataset; the model is not activated."""
    settings = _load_settings()
    from bot.generation.base import GenerationError
    from bot.generation.model_cache import resolve_model_path
    from finetune.config import TrainingConfig
    from finetune.trainer import train

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        model_path = resolve_model_path(settings.generation.model, settings.model_cache_dir)
        config = TrainingConfig(
            model=settings.generation.model,
            dataset_dir=dataset,
            output_dir=out or settings.home / "finetune" / "runs" / stamp,
            method=method,
            max_steps=max_steps,
            num_epochs=epochs,
            learning_rate=learning_rate,
            max_seq_len=max_seq_len,
            per_device_batch_tokens=batch_tokens,
            seed=seed,
        )
        result = train(config, model_path=model_path)
    except (GenerationError, ValueError, OSError) as error:
        raise _fail(f"Fine-tuning failed: {error}") from error
    typer.echo(
        f"Trained {result.steps} steps in {result.train_seconds:.0f} s "
        f"({result.answer_tokens_per_s:.0f} answer tokens/s); model saved to {result.model_dir}."
    )


@app.command("config")
def show_config() -> None:
    """Print the resolved settings, with secrets hidden."""
    settings = _load_settings()
    dumped = settings.model_dump(mode="json")
    if dumped["generation"].get("api_key"):
        dumped["generation"]["api_key"] = "***"
    import json

    typer.echo(json.dumps(dumped, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    app()
