"""FastAPI application factory: REST API, error mapping and the mounted Gradio chat.

Run with ``supportbot serve`` or ``uvicorn --factory ui.api.app:create_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import IntegrityError

from bot.config import Settings
from bot.dialog_manager import ConversationClosedError
from bot.guard import InvalidMessageError
from bot.handoff import HandoffError
from bot.runtime import BotRuntime, build_runtime
from bot.turn_lock import TurnLockTimeoutError
from storage.errors import NotFoundError
from ui.api.routes import agent, conversations, health, models

logger = logging.getLogger(__name__)

# Request bodies above this size are rejected before parsing (HTTP 413). A message at
# the 100,000-character field cap is at most 400 KB of UTF-8.
MAX_BODY_BYTES = 1_000_000
CHAT_PATH = "/chat"


def create_app(settings: Settings | None = None, *, runtime: BotRuntime | None = None) -> FastAPI:
    """Build the app; pass ``runtime`` to reuse loaded models (tests do).

    Raises:
        storage.errors.DatabaseUnavailableError: If the database cannot be reached.
    """
    runtime = runtime or build_runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("API started chat=%s docs=/docs", CHAT_PATH)
        runtime.models.start_watching(runtime.settings.generation.reload_interval_s)
        if runtime.nlu_models is not None:
            runtime.nlu_models.start_watching(runtime.settings.nlu.reload_interval_s)
        yield
        runtime.models.stop_watching()
        if runtime.nlu_models is not None:
            runtime.nlu_models.stop_watching()
        logger.info("API stopping")

    app = FastAPI(
        title="supportbot",
        summary="Customer-service chatbot answering from your help centre and past conversations.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.include_router(health.router)
    app.include_router(conversations.router)
    app.include_router(agent.router)
    app.include_router(models.router)
    _add_error_handlers(app)
    _add_body_limit(app)

    @app.get("/", include_in_schema=False)
    def read_root() -> RedirectResponse:
        return RedirectResponse(CHAT_PATH + "/")

    from ui.web.mount import mount_web_ui

    return mount_web_ui(app, runtime, path=CHAT_PATH)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, error: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(error)})

    @app.exception_handler(InvalidMessageError)
    async def _invalid_message(_request: Request, error: InvalidMessageError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": str(error), "code": error.code, "max_chars": error.max_chars},
        )

    @app.exception_handler(ConversationClosedError)
    async def _closed(_request: Request, error: ConversationClosedError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(error)})

    @app.exception_handler(HandoffError)
    async def _handoff_conflict(_request: Request, error: HandoffError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(error)})

    @app.exception_handler(TurnLockTimeoutError)
    async def _busy(_request: Request, error: TurnLockTimeoutError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": str(error)},
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(IntegrityError)
    async def _conflict(_request: Request, error: IntegrityError) -> JSONResponse:
        logger.warning("Rejected a write that conflicts with stored data: %s", error.orig)
        return JSONResponse(
            status_code=status.HTTP_409_CONFLICT,
            content={"detail": "the request conflicts with data stored meanwhile; retry it"},
        )


def _add_body_limit(app: FastAPI) -> None:
    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return JSONResponse(
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                content={
                    "detail": f"request body of {length} bytes is over the limit of "
                    f"{MAX_BODY_BYTES} bytes"
                },
            )
        return await call_next(request)
