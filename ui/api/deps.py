"""FastAPI dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.runtime import BotRuntime


def get_runtime(request: Request) -> BotRuntime:
    """Return the runtime built by the app factory."""
    return request.app.state.runtime


RuntimeDep = Annotated[BotRuntime, Depends(get_runtime)]
