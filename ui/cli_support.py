"""Helpers shared by the ``supportbot`` commands: settings, logging and exits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from pydantic import ValidationError

from bot.config import Settings

# Settings whose values never appear in error messages.
_SECRET_SETTINGS = frozenset({"api_key", "database_url"})


def load_settings(**overrides: object) -> Settings:
    """Read settings and configure logging for a command."""
    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**values)
    except ValidationError as error:
        typer.echo(f"Invalid configuration:\n{describe_settings_error(error)}", err=True)
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


def describe_settings_error(error: ValidationError) -> str:
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


def check_paths_exist(paths: list[Path], what: str) -> None:
    """Exit with a message before any work when a path on the command line is missing."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise fail(f"{what} not found: {', '.join(missing)}. Check the path and try again.")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to stderr and return the exit to raise."""
    typer.echo(message, err=True)
    return typer.Exit(code)
