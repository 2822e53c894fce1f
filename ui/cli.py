"""The ``supportbot`` command line: parse arguments, build settings, call one library function."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from ui.cli_finetune import finetune_app
from ui.cli_models import models_app
from ui.cli_nlu import finetune_intent  # noqa: F401  (registers the NLU training commands)
from ui.cli_support import check_paths_exist, fail, load_settings

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="supportbot",
    help="Self-hosted customer-service chatbot: import dialogs, index documents, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(finetune_app, name="finetune")
app.add_typer(models_app, name="models")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind; default 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; default 8000.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Serve the REST API and the customer chat from one process."""
    settings = load_settings(host=host, port=port)
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
    settings = load_settings()
    check_paths_exist(paths, "Dialog file or folder")
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
        raise fail(
            f"Import failed: {error.problem}. Fix the record and import again, or run with "
            "--skip-invalid to skip invalid records and count them."
        ) from error
    except (StorageError, ValueError, OSError) as error:
        raise fail(f"Import failed: {error}") from error
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
    settings = load_settings()
    check_paths_exist(paths or [], "Knowledge file or folder")
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
        raise fail(f"Indexing failed: {error}") from error
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
    settings = load_settings(data_dir=data_dir, host=host, port=port)
    from ui.demo.setup import DemoSetupError, prepare_demo

    try:
        summary = prepare_demo(settings)
    except DemoSetupError as error:
        raise fail(f"Demo set-up failed: {error}") from error
    typer.echo(summary)
    if serve_after:
        from ui.demo.answer_templates import with_demo_templates
        from ui.serve import run_server

        settings = with_demo_templates(settings)

        run_server(settings, workers=1)


@app.command("config")
def show_config() -> None:
    """Print the resolved settings, with secrets hidden."""
    settings = load_settings()
    dumped = settings.model_dump(mode="json")
    if dumped["generation"].get("api_key"):
        dumped["generation"]["api_key"] = "***"
    if dumped["policy"].get("agent_token"):
        dumped["policy"]["agent_token"] = "***"
    import json

    typer.echo(json.dumps(dumped, indent=2, ensure_ascii=False))


from ui import cli_eval  # noqa: E402, F401  (adds `supportbot eval` to app; needs app)

if __name__ == "__main__":
    app()
