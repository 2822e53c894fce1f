"""Gradio customer chat: answers with their sources, English/中文 switch.

Every visible string comes from the message catalogue in ``bot/locales``.
"""

from __future__ import annotations

import functools
import html
import logging
from typing import Any

import gradio as gr

from bot.dialog_manager import ConversationClosedError, DialogManager
from bot.guard import InvalidMessageError
from bot.i18n import translate
from bot.reply import Reply, ReplyPath
from bot.turn_lock import TurnLockTimeoutError
from storage.errors import NotFoundError

logger = logging.getLogger(__name__)

LANGUAGE_CHOICES = [("English", "en"), ("中文", "zh-CN")]


def build_chat(manager: DialogManager, *, default_language: str = "en") -> gr.Blocks:
    """Build the customer chat page around ``manager``."""
    t = functools.partial(translate, language=default_language)

    with gr.Blocks(title=t("chat.title"), analytics_enabled=False) as blocks:
        conversation_id = gr.State(None)
        with gr.Row():
            header = gr.Markdown(_header(default_language), elem_id="chat-header")
            language = gr.Radio(
                choices=LANGUAGE_CHOICES,
                value=default_language,
                label=t("chat.language"),
                elem_id="chat-language",
                scale=0,
                min_width=200,
            )
        chatbot = gr.Chatbot(
            height=460, show_label=False, elem_id="chat-history", feedback_options=None
        )
        with gr.Row():
            textbox = gr.Textbox(
                placeholder=t("chat.placeholder"), show_label=False, scale=5, elem_id="chat-input"
            )
            send = gr.Button(t("chat.send"), variant="primary", scale=1, elem_id="chat-send")
        new = gr.Button(t("chat.new_conversation"), size="sm", elem_id="chat-new")
        footer = gr.Markdown(t("chat.footer"), elem_id="chat-footer")

        def on_send(text: str, history: list[dict[str, Any]], current_id: int | None, lang: str):
            return _send(manager, text, history or [], current_id, lang)

        inputs = [textbox, chatbot, conversation_id, language]
        outputs = [textbox, chatbot, conversation_id]
        textbox.submit(on_send, inputs, outputs)
        send.click(on_send, inputs, outputs)
        new.click(lambda: ([], None), outputs=[chatbot, conversation_id])
        language.change(
            _relabel, inputs=[language], outputs=[header, language, textbox, send, new, footer]
        )
    return blocks


def _header(language: str) -> str:
    return f"## {translate('chat.title', language)}\n{translate('chat.subtitle', language)}"


def _relabel(language: str) -> tuple[Any, ...]:
    return (
        gr.update(value=_header(language)),
        gr.update(label=translate("chat.language", language)),
        gr.update(placeholder=translate("chat.placeholder", language)),
        gr.update(value=translate("chat.send", language)),
        gr.update(value=translate("chat.new_conversation", language)),
        gr.update(value=translate("chat.footer", language)),
    )


def _send(
    manager: DialogManager,
    text: str,
    history: list[dict[str, Any]],
    conversation_id: int | None,
    language: str,
) -> tuple[str, list[dict[str, Any]], int | None]:
    if conversation_id is None:
        conversation_id = manager.start_conversation(channel="web", language=language)
    try:
        reply = manager.respond(conversation_id, text)
    except InvalidMessageError as error:
        key = "chat.error_empty" if error.code == "empty" else "chat.error_too_long"
        gr.Warning(translate(key, language, count=error.length, max_chars=error.max_chars))
        return text, history, conversation_id
    except TurnLockTimeoutError:
        gr.Warning(translate("chat.error_busy", language))
        return text, history, conversation_id
    except (NotFoundError, ConversationClosedError):
        # The conversation was deleted behind the page: start over on the next message.
        logger.warning(
            "Chat conversation id=%s is gone or closed; starting a new one", conversation_id
        )
        gr.Warning(translate("chat.error_internal", language))
        return text, history, None

    history = [
        *history,
        {"role": "user", "content": html.escape(text)},
        {"role": "assistant", "content": format_reply(reply, language)},
    ]
    return "", history, conversation_id


def format_reply(reply: Reply, language: str) -> str:
    """Render a reply as Markdown: the escaped answer, then its sources."""
    lines = [html.escape(reply.text)]
    if reply.citations:
        lines.append(f"\n**{translate('chat.sources', language)}**")
        for number, citation in enumerate(reply.citations, start=1):
            item = translate(
                "chat.source_item",
                language,
                title=html.escape(citation.title),
                score=f"{citation.score:.2f}",
            )
            lines.append(f"{number}. {item}")
    elif reply.path is ReplyPath.GENERATED:
        lines.append(f"\n_{translate('chat.offer_agent', language)}_")
    return "\n".join(lines)
