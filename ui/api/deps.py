"""FastAPI dependencies: the runtime, and the agent token check."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from bot.runtime import BotRuntime

logger = logging.getLogger(__name__)


def get_runtime(request: Request) -> BotRuntime:
    """Return the runtime built by the app factory."""
    return request.app.state.runtime


RuntimeDep = Annotated[BotRuntime, Depends(get_runtime)]


def is_agent(request: Request, runtime: BotRuntime) -> bool:
    """Return True when the request may see agent data.

    With ``policy.agent_token`` unset every caller may; with it set, only requests with
    ``Authorization: Bearer <token>``.
    """
    token = runtime.settings.policy.agent_token
    if not token:
        return True
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def require_agent(request: Request, runtime: RuntimeDep) -> None:
    """Reject the request with HTTP 401 unless it carries the agent token (when one is set)."""
    if not is_agent(request, runtime):
        logger.warning("Rejected an agent request without a valid token path=%s", request.url.path)
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="this endpoint needs the agent token: send 'Authorization: Bearer <token>' "
            "with the value of SUPPORTBOT_POLICY__AGENT_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


AgentDep = Annotated[None, Depends(require_agent)]
