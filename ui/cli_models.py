"""``supportbot models``: list model versions, activate one, roll back.

A running server checks the registry every ``generation.reload_interval_s`` seconds
and switches models on its own; ``POST /v1/models/reload`` switches it at once.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Annotated

import typer

from ui.cli_support import fail, load_settings

logger = logging.getLogger(__name__)

models_app = typer.Typer(
    help="Model versions: list them, activate one, roll back to the previous one.",
    no_args_is_help=True,
)

_KIND_HELP = "Model kind: dialog, intent or ner."


@models_app.command("list")
def list_models(
    kind: Annotated[str, typer.Option(help=_KIND_HELP)] = "dialog",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List versions, newest first, with status, key metrics and which one is active."""
    settings = load_settings()
    from bot.runtime import open_database
    from storage import model_registry

    model_kind = _parse_kind(kind)
    engine, session_factory = open_database(settings)
    try:
        with session_factory() as session:
            active_by_language = model_registry.get_active_versions(session, model_kind)
            active_ids = {version.id for version in active_by_language.values()}
            versions = model_registry.list_versions(session, model_kind)
            rows = [
                {
                    "version": version.version,
                    "status": version.status.value,
                    "language": version.language,
                    "active": version.id in active_ids,
                    "rouge_l": version.metrics.get("rouge_l"),
                    "token_f1": version.metrics.get("token_f1"),
                    "perplexity": version.metrics.get("perplexity"),
                    "metrics": version.metrics,
                    "created_at": _as_utc(version.created_at).isoformat(),
                    "path": version.path,
                    "error": version.error,
                }
                for version in versions
            ]
            active_names = {
                language or "all": version.version
                for language, version in active_by_language.items()
            }
    finally:
        engine.dispose()

    if model_kind.value == "dialog":
        active_label = active_names.get("all", "base")
    else:
        active_label = (
            ", ".join(f"{name} ({language})" for language, name in sorted(active_names.items()))
            or "none (rules only)"
        )
    if as_json:
        payload = {"active": active_names.get("all", "base"), "versions": rows}
        if model_kind.value != "dialog":
            payload["active"] = active_names
        typer.echo(json.dumps(payload))
        return
    typer.echo(f"Active {model_kind.value} model: {active_label}")
    if model_kind.value != "dialog":
        _echo_nlu_rows(rows, model_kind.value)
        return
    if not rows:
        typer.echo("No versions registered yet. Train one with: supportbot finetune run")
        return
    typer.echo(f"{'':2}{'version':32} {'status':12} {'ROUGE-L':>8} {'F1':>6} {'ppl':>8}  created")
    for row in rows:
        marker = "* " if row["active"] else "  "
        typer.echo(
            f"{marker}{row['version']:32} {row['status']:12} {_number(row['rouge_l']):>8} "
            f"{_number(row['token_f1']):>6} {_number(row['perplexity']):>8}  {row['created_at']}"
        )


def _echo_nlu_rows(rows: list[dict], kind: str) -> None:
    if not rows:
        typer.echo(f"No versions registered yet. Train one with: supportbot finetune {kind}")
        return
    headline = "accuracy" if kind == "intent" else "entity_f1"
    typer.echo(f"{'':2}{'version':36} {'language':8} {'status':10} {headline:>9}  created")
    for row in rows:
        marker = "* " if row["active"] else "  "
        typer.echo(
            f"{marker}{row['version']:36} {row['language'] or 'all':8} {row['status']:10} "
            f"{_number(row['metrics'].get(headline)):>9}  {row['created_at']}"
        )


@models_app.command("activate")
def activate_model(
    version: Annotated[str, typer.Argument(help="Version name from 'supportbot models list'.")],
    force: Annotated[
        bool,
        typer.Option(help="Also activate a version that did not beat the serving model."),
    ] = False,
) -> None:
    """Make VERSION the active model; running servers switch within the reload interval."""
    settings = load_settings()
    from bot.runtime import open_database
    from storage import model_registry
    from storage.errors import StorageError

    engine, session_factory = open_database(settings)
    try:
        with session_factory.begin() as session:
            model_version = model_registry.get_version(session, version)
            _check_model_folder(model_version.path, version)
            model_registry.activate_version(session, version, force=force, reason="cli")
    except StorageError as error:
        raise fail(f"Activation failed: {error}") from error
    finally:
        engine.dispose()
    typer.echo(
        f"Activated {version}. Servers switch within "
        f"{settings.generation.reload_interval_s:g} s, or at once after POST /v1/models/reload."
    )


@models_app.command("rollback")
def rollback_model(
    kind: Annotated[str, typer.Option(help=_KIND_HELP)] = "dialog",
    language: Annotated[
        str | None,
        typer.Option(help="Language of the intent or entity version to roll back: en or zh-CN."),
    ] = None,
) -> None:
    """Return to the version that was active before the current one, or to the base model."""
    settings = load_settings()
    from bot.runtime import open_database
    from storage import model_registry
    from storage.errors import StorageError

    model_kind = _parse_kind(kind)
    engine, session_factory = open_database(settings)
    try:
        with session_factory.begin() as session:
            restored = model_registry.rollback(session, model_kind, language)
            restored_name = restored.version if restored else "base"
    except StorageError as error:
        raise fail(f"Rollback failed: {error}") from error
    finally:
        engine.dispose()
    scope = f" for {language}" if language else ""
    typer.echo(f"Rolled back; the active {model_kind.value} model{scope} is now {restored_name}.")


def _parse_kind(kind: str):
    from storage.models import ModelKind

    try:
        return ModelKind(kind)
    except ValueError as error:
        choices = ", ".join(member.value for member in ModelKind)
        raise fail(f"Invalid --kind {kind!r}: use one of {choices}.", code=2) from error


def _check_model_folder(path: str | None, version: str) -> None:
    from pathlib import Path

    # Dialog versions are transformers folders; intent and entity versions have a manifest.
    if path and not any(
        (Path(path) / name).is_file() for name in ("config.json", "nlu_model.json")
    ):
        raise fail(
            f"Activation failed: the model folder {path} of version {version!r} is missing or "
            "incomplete. Restore it or train the version again."
        )


def _as_utc(value: datetime) -> datetime:
    # Times are stored in UTC, but SQLite returns them without a time zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
