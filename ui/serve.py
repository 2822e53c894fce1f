"""Run the API and the chat under uvicorn."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from bot.config import Settings

logger = logging.getLogger(__name__)


def create_server_app() -> FastAPI:
    """Build the app in a server process from the environment's settings."""
    from ui.api.app import create_app

    return create_app(Settings())


def run_server(settings: Settings, *, workers: int = 1) -> None:
    """Serve until interrupted.

    With ``workers`` above 1 every process builds its own runtime from the environment,
    so settings must come from ``SUPPORTBOT_*`` variables or the config file, not from
    command-line overrides other than host and port.
    """
    base = f"http://{settings.host}:{settings.port}"
    logger.info(
        "Starting supportbot workers=%d chat=%s/chat/ api_docs=%s/docs health=%s/v1/health",
        workers,
        base,
        base,
        base,
    )
    if workers == 1:
        from ui.api.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    else:
        uvicorn.run(
            "ui.serve:create_server_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
        )
    logger.info("supportbot stopped")
