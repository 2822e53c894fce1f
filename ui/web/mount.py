"""Mount the Gradio pages on the FastAPI app."""

from __future__ import annotations

import logging

import gradio as gr
from fastapi import FastAPI

from bot.runtime import BotRuntime
from ui.web.chat import build_chat

logger = logging.getLogger(__name__)


def mount_web_ui(app: FastAPI, runtime: BotRuntime, *, path: str) -> FastAPI:
    """Mount the customer chat at ``path`` and return the app."""
    blocks = build_chat(runtime.dialog_manager, default_language=runtime.settings.default_language)
    logger.info("Mounting customer chat at %s", path)
    return gr.mount_gradio_app(app, blocks, path=path, footer_links=[], ssr_mode=False)
