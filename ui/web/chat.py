"""Gradio customer chat: bot replies with their sources, agent messages, thumbs and ratings.

The chat shows the stored transcript of its conversation. Agent and system messages
appear when the page polls for them every ``policy.chat_poll_interval_s`` seconds. Every
visible string comes from the message catalogue in ``bot/locales``, and stored text is
HTML-escaped, so text that looks like HTML is shown as text.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from typing import Any

import gradio as gr

from bot.dialog_manager import ConversationClosedError
from bot.guard import InvalidMessageError
from bot.i18n import translate
from bot.runtime import BotRuntime
from bot.turn_lock import TurnLockTimeoutError
from storage import repository
from storage.errors import NotFoundError
from storage.models import ConversationStatus, Message, Role
from ui.web.explanation import format_intent

logger = logging.getLogger(__name__)

LANGUAGE_CHOICES = [("English", "en"), ("中文", "zh-CN")]
RATING_CHOICES = [1, 2, 3, 4, 5]
# Gradio's feedback options that render as thumb icons.
THUMBS = ("Like", "Dislike")

ChatHistory = list[dict[str, Any]]
# Page state: the conversation id, the seq of the last message shown, the stored bot
# message id behind each history entry (None for other entries), the conversation status
# and whether the customer rated the closed conversation.
ChatView = dict[str, Any]


def new_view() -> ChatView:
    """Return the view of a page with no conversation yet."""
    return {
        "conversation_id": None,
        "last_seq": 0,
        "message_ids": [],
        "status": ConversationStatus.BOT.value,
        "rated": False,
    }


def build_chat(runtime: BotRuntime, *, default_language: str = "en") -> gr.Blocks:
    """Build the customer chat page around ``runtime``'s dialog, handoff and feedback."""
    t = functools.partial(translate, language=default_language)

    with gr.Blocks(title=t("chat.title"), analytics_enabled=False) as blocks:
        view = gr.State(new_view())
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
            height=460,
            show_label=False,
            elem_id="chat-history",
            feedback_options=THUMBS,
            latex_delimiters=[],
        )
        with gr.Row():
            textbox = gr.Textbox(
                placeholder=t("chat.placeholder"), show_label=False, scale=5, elem_id="chat-input"
            )
            send = gr.Button(t("chat.send"), variant="primary", scale=1, elem_id="chat-send")
        with gr.Row():
            new = gr.Button(t("chat.new_conversation"), size="sm", elem_id="chat-new")
            end = gr.Button(t("chat.end_conversation"), size="sm", elem_id="chat-end")
        with gr.Column(visible=False, elem_id="chat-rating") as rating_panel:
            rating_prompt = gr.Markdown(t("chat.rating_prompt"))
            rating = gr.Radio(choices=RATING_CHOICES, show_label=False, elem_id="chat-rating-value")
            rate = gr.Button(t("chat.rating_send"), size="sm", elem_id="chat-rating-send")
        footer = gr.Markdown(t("chat.footer"), elem_id="chat-footer")
        timer = gr.Timer(runtime.settings.policy.chat_poll_interval_s)

        def on_send(text: str, history: ChatHistory, current: ChatView, lang: str):
            return _send(runtime, text, history or [], current, lang)

        def on_like(history: ChatHistory, current: ChatView, lang: str, data: gr.LikeData):
            return _rate_reply(runtime, current, lang, data.index, data.liked)

        def on_tick(current: ChatView, lang: str):
            return _poll(runtime, current, lang)

        def on_end(current: ChatView, lang: str):
            return _end(runtime, current, lang)

        def on_rate(current: ChatView, value: int | None, lang: str):
            return _rate_conversation(runtime, current, value, lang)

        history_outputs = [chatbot, view, rating_panel]
        inputs = [textbox, chatbot, view, language]
        textbox.submit(on_send, inputs, [textbox, *history_outputs])
        send.click(on_send, inputs, [textbox, *history_outputs])
        chatbot.like(on_like, [chatbot, view, language], history_outputs)
        timer.tick(on_tick, [view, language], history_outputs)
        end.click(on_end, [view, language], history_outputs)
        rate.click(on_rate, [view, rating, language], [view, rating_panel])
        new.click(lambda: ([], new_view(), gr.update(visible=False)), outputs=history_outputs)
        language.change(
            _relabel,
            inputs=[language],
            outputs=[header, language, textbox, send, new, end, rating_prompt, rate, footer],
        ).then(
            lambda current, lang: _reload(runtime, current, lang), [view, language], history_outputs
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
        gr.update(value=translate("chat.end_conversation", language)),
        gr.update(value=translate("chat.rating_prompt", language)),
        gr.update(value=translate("chat.rating_send", language)),
        gr.update(value=translate("chat.footer", language)),
    )


def _send(
    runtime: BotRuntime, text: str, history: ChatHistory, view: ChatView, language: str
) -> tuple[str, ChatHistory, ChatView, Any]:
    """Send one customer message to the bot; return the textbox, history, view and rating panel."""
    manager = runtime.dialog_manager
    if view["conversation_id"] is None:
        conversation_id = manager.start_conversation(channel="web", language=language)
        view = {**new_view(), "conversation_id": conversation_id}
    conversation_id = view["conversation_id"]
    try:
        manager.respond(conversation_id, text)
    except InvalidMessageError as error:
        key = "chat.error_empty" if error.code == "empty" else "chat.error_too_long"
        gr.Warning(translate(key, language, count=error.length, max_chars=error.max_chars))
        return text, history, view, gr.skip()
    except TurnLockTimeoutError:
        gr.Warning(translate("chat.error_busy", language))
        return text, history, view, gr.skip()
    except ConversationClosedError:
        logger.info("Chat message to closed conversation id=%s rejected", conversation_id)
        gr.Warning(translate("chat.error_closed", language))
        return text, *_reload(runtime, view, language)
    except NotFoundError:
        # The conversation was deleted behind the page: start over on the next message.
        logger.warning("Chat conversation id=%s is gone; starting a new one", conversation_id)
        gr.Warning(translate("chat.error_internal", language))
        return text, history, new_view(), gr.update(visible=False)
    return "", *_reload(runtime, view, language)


def _poll(runtime: BotRuntime, view: ChatView, language: str) -> tuple[Any, Any, Any]:
    """Return the updated history when messages arrived or the status changed, else skips."""
    conversation_id = view["conversation_id"]
    if conversation_id is None:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        with runtime.session_factory() as session:
            conversation = repository.get_conversation(session, conversation_id)
            latest = repository.list_messages(session, conversation_id=conversation_id, last=1)
            status = conversation.status.value
    except NotFoundError:
        logger.warning("Chat conversation id=%s is gone; polling stops", conversation_id)
        return gr.skip(), new_view(), gr.skip()
    last_seq = latest[-1].seq if latest else 0
    if last_seq == view["last_seq"] and status == view["status"]:
        return gr.skip(), gr.skip(), gr.skip()
    return _reload(runtime, view, language)


def _reload(
    runtime: BotRuntime, view: ChatView, language: str
) -> tuple[ChatHistory, ChatView, Any]:
    """Return the conversation's whole history, the new view and the rating panel."""
    conversation_id = view["conversation_id"]
    if conversation_id is None:
        return [], view, gr.update(visible=False)
    conversation, messages = runtime.dialog_manager.get_transcript(conversation_id)
    show_explanation = runtime.settings.policy.show_explanation_to_customers
    history: ChatHistory = []
    message_ids: list[int | None] = []
    for message in messages:
        history.append(format_message(message, language, show_explanation=show_explanation))
        message_ids.append(message.id if message.role == Role.BOT else None)
    status = conversation.status.value
    view = {
        **view,
        "last_seq": messages[-1].seq if messages else 0,
        "message_ids": message_ids,
        "status": status,
    }
    is_rating_open = status == ConversationStatus.CLOSED.value and not view["rated"]
    return history, view, gr.update(visible=is_rating_open)


def _rate_reply(
    runtime: BotRuntime, view: ChatView, language: str, index: Any, liked: Any
) -> tuple[Any, Any, Any]:
    """Store a thumbs up or down on the bot reply at history ``index``.

    A thumbs down may hand the conversation to an agent; the history then shows the
    bot's handoff notice.
    """
    position = index[0] if isinstance(index, list | tuple) else index
    message_ids = view["message_ids"]
    message_id = message_ids[position] if 0 <= position < len(message_ids) else None
    value = {True: 1, False: -1, "Like": 1, "Dislike": -1}.get(liked)
    if message_id is None or value is None:
        gr.Info(translate("chat.feedback_not_bot", language))
        return gr.skip(), gr.skip(), gr.skip()
    try:
        result = runtime.feedback.rate_reply(view["conversation_id"], message_id, value)
    except (NotFoundError, ValueError, TurnLockTimeoutError) as error:
        logger.warning(
            "Chat feedback failed conversation id=%s message id=%s: %s",
            view["conversation_id"],
            message_id,
            error,
        )
        gr.Warning(translate("chat.error_internal", language))
        return gr.skip(), gr.skip(), gr.skip()
    gr.Info(translate("chat.feedback_thanks", language))
    if not result.handed_off:
        return gr.skip(), gr.skip(), gr.skip()
    return _reload(runtime, view, language)


def _end(runtime: BotRuntime, view: ChatView, language: str) -> tuple[Any, Any, Any]:
    """Close the conversation as the customer and offer the rating."""
    conversation_id = view["conversation_id"]
    if conversation_id is None:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        runtime.handoff.close(conversation_id, None)
    except (NotFoundError, TurnLockTimeoutError) as error:
        logger.warning("Chat could not close conversation id=%s: %s", conversation_id, error)
        gr.Warning(translate("chat.error_internal", language))
        return gr.skip(), gr.skip(), gr.skip()
    return _reload(runtime, view, language)


def _rate_conversation(
    runtime: BotRuntime, view: ChatView, rating: int | None, language: str
) -> tuple[Any, Any]:
    """Store the customer's 1-5 rating; return the view and the hidden rating panel."""
    conversation_id = view["conversation_id"]
    if conversation_id is None:
        return gr.skip(), gr.update(visible=False)
    if rating is None:
        gr.Warning(translate("chat.rating_missing", language))
        return gr.skip(), gr.skip()
    try:
        runtime.feedback.rate_conversation(conversation_id, int(rating))
    except (NotFoundError, ValueError) as error:
        logger.warning("Chat rating failed conversation id=%s: %s", conversation_id, error)
        gr.Warning(translate("chat.error_internal", language))
        return gr.skip(), gr.skip()
    gr.Info(translate("chat.rating_thanks", language))
    return {**view, "rated": True}, gr.update(visible=False)


# Characters that Markdown would turn into formatting; escaped so that text is shown as
# written ("use ~~tildes~~" keeps its tildes).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_~\[\]#|])")


def as_text(text: str) -> str:
    """Return ``text`` escaped for a Markdown chat entry: no HTML, no Markdown formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text))


def format_message(message: Message, language: str, *, show_explanation: bool) -> dict[str, str]:
    """Return one stored message as a Chatbot entry with escaped Markdown content."""
    text = as_text(message.text)
    if message.role == Role.CUSTOMER:
        return {"role": "user", "content": text}
    if message.role == Role.AGENT:
        label = translate("chat.agent_label", language, agent=message.meta.get("agent", ""))
        return {"role": "assistant", "content": f"**{as_text(label)}**\n\n{text}"}
    if message.role == Role.SYSTEM:
        return {"role": "assistant", "content": f"_{text}_"}
    return {
        "role": "assistant",
        "content": format_bot_reply(message.text, message.meta, language, show_explanation),
    }


def format_bot_reply(
    text: str, meta: dict[str, Any], language: str, show_explanation: bool = False
) -> str:
    """Render a bot reply as Markdown: the escaped text, its sources, then the explanation."""
    lines = [as_text(text)]
    citations = meta.get("citations") or []
    if citations:
        lines.append(f"\n**{translate('chat.sources', language)}**")
        for number, citation in enumerate(citations, start=1):
            item = translate(
                "chat.source_item",
                language,
                title=as_text(str(citation.get("title", ""))),
                score=f"{float(citation.get('score', 0)):.2f}",
            )
            lines.append(f"{number}. {item}")
    elif meta.get("path") == "generated":
        lines.append(f"\n_{translate('chat.offer_agent', language)}_")
    if show_explanation:
        lines.append(f"\n<small>{html.escape(_explanation_summary(meta, language))}</small>")
    return "\n".join(lines)


def _explanation_summary(meta: dict[str, Any], language: str) -> str:
    explanation = meta.get("explanation") or {}
    parts = [str(explanation.get("path") or meta.get("path") or "")]
    if explanation.get("reason"):
        parts.append(str(explanation["reason"]))
    intent = format_intent(explanation.get("nlu") or {})
    if intent:
        parts.append(intent)
    template = explanation.get("template") or {}
    if template.get("id"):
        parts.append(f"template {template['id']}")
    return translate("chat.explanation", language, summary=", ".join(p for p in parts if p))
