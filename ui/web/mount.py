"""Mount the Gradio pages on the FastAPI app: the customer chat and the agent console."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

import gradio as gr
from fastapi import FastAPI

from bot.i18n import translate
from bot.runtime import BotRuntime
from ui.web.chat import build_chat
from ui.web.console import build_console
from ui.web.transcript import CONSOLE_CSS

logger = logging.getLogger(__name__)

CONSOLE_PATH = "/console"


def mount_web_ui(
    app: FastAPI, runtime: BotRuntime, *, path: str, console_path: str = CONSOLE_PATH
) -> FastAPI:
    """Mount the customer chat at ``path`` and the agent console at ``console_path``.

    When ``policy.agent_token`` is set, the console asks for it with Gradio's login page:
    any name with the token as password signs in, and the name fills the agent field.
    """
    language = runtime.settings.default_language
    chat = build_chat(runtime, default_language=language)
    logger.info("Mounting customer chat at %s", path)
    app = gr.mount_gradio_app(app, chat, path=path, footer_links=[], ssr_mode=False)
    return mount_console(
        app, runtime, path=console_path, agent_token=runtime.settings.policy.agent_token
    )


def mount_console(
    app: FastAPI, runtime: BotRuntime, *, path: str, agent_token: str | None
) -> FastAPI:
    """Mount the agent console at ``path``, behind a login when ``agent_token`` is set."""
    language = runtime.settings.default_language
    console = build_console(runtime, default_language=language)
    auth = _token_check(agent_token) if agent_token else None
    if auth is None:
        logger.warning(
            "Agent console at %s is open to anyone who reaches the port: set "
            "SUPPORTBOT_POLICY__AGENT_TOKEN to require a password",
            path,
        )
    logger.info("Mounting agent console at %s login=%s", path, auth is not None)
    return gr.mount_gradio_app(
        app,
        console,
        path=path,
        footer_links=[],
        ssr_mode=False,
        auth=auth,
        auth_message=translate("console.auth_message", language) if auth else None,
        css=CONSOLE_CSS,
    )


def _token_check(agent_token: str) -> Callable[[str, str], bool]:
    expected = agent_token.encode("utf-8")

    def check(username: str, password: str) -> bool:
        is_valid = hmac.compare_digest((password or "").encode("utf-8"), expected)
        if not is_valid:
            logger.warning("Agent console login rejected for name=%r", username)
        return is_valid

    return check
