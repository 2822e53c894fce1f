"""Gradio agent console: the handoff queue, conversation search, transcripts and actions.

Agents take conversations over from the bot, reply, hand them back or close them, and
correct wrong bot replies. The queue and the open transcript refresh every
``policy.chat_poll_interval_s`` seconds. Every visible string comes from the message
catalogue in ``bot/locales``; stored text is escaped (see :mod:`ui.web.transcript`).
"""

from __future__ import annotations

import functools
import html
import logging
from typing import Any

import gradio as gr

from bot.i18n import translate
from bot.runtime import BotRuntime
from ui.web.chat import LANGUAGE_CHOICES
from ui.web.console_actions import AgentConsole, ConsoleInputError

logger = logging.getLogger(__name__)

STATUS_VALUES = ("waiting", "agent", "bot", "closed")


def build_console(runtime: BotRuntime, *, default_language: str = "en") -> gr.Blocks:
    """Build the agent console page around ``runtime``."""
    console = AgentConsole(runtime)
    t = functools.partial(translate, language=default_language)
    threshold = runtime.settings.policy.template_min_confidence

    with gr.Blocks(title=t("console.title"), analytics_enabled=False) as blocks:
        rendered = gr.State({"queue": "", "transcript": ""})
        with gr.Row():
            header = gr.Markdown(_header(default_language), elem_id="console-header")
            language = gr.Radio(
                choices=LANGUAGE_CHOICES,
                value=default_language,
                label=t("console.language"),
                elem_id="console-language",
                scale=0,
                min_width=200,
            )
        agent = gr.Textbox(label=t("console.agent_name"), elem_id="console-agent", max_lines=1)
        with gr.Row():
            with gr.Column(scale=1):
                queue_heading = gr.Markdown(f"### {t('console.queue_heading')}")
                queue = gr.HTML(elem_id="console-queue")
                search_heading = gr.Markdown(f"### {t('console.search_heading')}")
                statuses = gr.CheckboxGroup(
                    choices=_status_choices(default_language),
                    label=t("console.filter_status"),
                    elem_id="console-filter-status",
                )
                low_confidence = gr.Checkbox(
                    label=t("console.filter_low_confidence", threshold=threshold),
                    elem_id="console-filter-low-confidence",
                )
                with_fallback = gr.Checkbox(
                    label=t("console.filter_fallback"), elem_id="console-filter-fallback"
                )
                with_negative = gr.Checkbox(
                    label=t("console.filter_negative"), elem_id="console-filter-negative"
                )
                since = gr.Textbox(label=t("console.filter_since"), elem_id="console-since")
                until = gr.Textbox(label=t("console.filter_until"), elem_id="console-until")
                search_text = gr.Textbox(label=t("console.filter_text"), elem_id="console-text")
                search = gr.Button(t("console.search"), elem_id="console-search")
                results = gr.HTML(elem_id="console-results")
            with gr.Column(scale=2):
                with gr.Row():
                    conversation_id = gr.Number(
                        label=t("console.conversation_id"),
                        precision=0,
                        elem_id="console-conversation-id",
                    )
                    open_button = gr.Button(t("console.open"), elem_id="console-open")
                with gr.Row():
                    claim = gr.Button(
                        t("console.claim"), variant="primary", elem_id="console-claim"
                    )
                    hand_back = gr.Button(t("console.hand_back"), elem_id="console-hand-back")
                    close = gr.Button(t("console.close"), variant="stop", elem_id="console-close")
                status = gr.Markdown(elem_id="console-status")
                transcript = gr.HTML(
                    console.transcript_html(None, default_language), elem_id="console-transcript"
                )
                reply_text = gr.Textbox(
                    placeholder=t("console.reply_placeholder"),
                    show_label=False,
                    lines=3,
                    elem_id="console-reply-text",
                )
                reply = gr.Button(t("console.reply"), variant="primary", elem_id="console-reply")
                correction_heading = gr.Markdown(f"### {t('console.correction_heading')}")
                message_id = gr.Number(
                    label=t("console.correction_message_id"),
                    precision=0,
                    elem_id="console-correction-id",
                )
                correction_text = gr.Textbox(
                    label=t("console.correction_text"), lines=3, elem_id="console-correction-text"
                )
                save_correction = gr.Button(
                    t("console.correction_save"), elem_id="console-correction-save"
                )
        timer = gr.Timer(runtime.settings.policy.chat_poll_interval_s)

        views = [status, transcript, queue, rendered]

        def on_open(cid: float | None, lang: str, state: dict[str, str]):
            return _show(console, cid, lang, state, "")

        def on_claim(cid: float | None, name: str, lang: str, state: dict[str, str]):
            return _show(console, cid, lang, state, console.claim(_id(cid), name, lang).message)

        def on_hand_back(cid: float | None, name: str, lang: str, state: dict[str, str]):
            return _show(console, cid, lang, state, console.hand_back(_id(cid), name, lang).message)

        def on_close(cid: float | None, name: str, lang: str, state: dict[str, str]):
            return _show(console, cid, lang, state, console.close(_id(cid), name, lang).message)

        def on_reply(cid: float | None, name: str, text: str, lang: str, state: dict[str, str]):
            result = console.reply(_id(cid), name, text, lang)
            return (*_show(console, cid, lang, state, result.message), "" if result.ok else text)

        def on_correct(
            cid: float | None,
            name: str,
            mid: float | None,
            text: str,
            lang: str,
            state: dict[str, str],
        ):
            result = console.correct(_id(cid), name, _id(mid), text, lang)
            return (*_show(console, cid, lang, state, result.message), "" if result.ok else text)

        def on_search(lang: str, chosen: list[str], low: bool, fallback: bool, negative: bool,
                      start: str, end: str, text: str):  # fmt: skip
            return _search(console, lang, chosen, low, fallback, negative, start, end, text)

        def on_tick(cid: float | None, lang: str, state: dict[str, str]):
            return _refresh(console, cid, lang, state)

        def on_login(request: gr.Request):
            return request.username or gr.skip()

        open_button.click(on_open, [conversation_id, language, rendered], views)
        conversation_id.submit(on_open, [conversation_id, language, rendered], views)
        agent_inputs = [conversation_id, agent, language, rendered]
        claim.click(on_claim, agent_inputs, views)
        hand_back.click(on_hand_back, agent_inputs, views)
        close.click(on_close, agent_inputs, views)
        reply.click(
            on_reply, [conversation_id, agent, reply_text, language, rendered], [*views, reply_text]
        )
        save_correction.click(
            on_correct,
            [conversation_id, agent, message_id, correction_text, language, rendered],
            [*views, correction_text],
        )
        filters = [statuses, low_confidence, with_fallback, with_negative, since, until]
        search.click(on_search, [language, *filters, search_text], [results, status])
        search_text.submit(on_search, [language, *filters, search_text], [results, status])
        timer.tick(on_tick, [conversation_id, language, rendered], [transcript, queue, rendered])
        blocks.load(on_login, None, agent)
        blocks.load(on_tick, [conversation_id, language, rendered], [transcript, queue, rendered])

        relabeled = [header, language, agent, queue_heading, search_heading, statuses,
                     low_confidence, with_fallback, with_negative, since, until, search_text,
                     search, conversation_id, open_button, claim, hand_back, close, reply_text,
                     reply, correction_heading, message_id, correction_text,
                     save_correction]  # fmt: skip
        language.change(
            functools.partial(_relabel, threshold=threshold), [language], relabeled
        ).then(on_open, [conversation_id, language, rendered], views)
    return blocks


def _id(value: float | None) -> int | None:
    return None if value is None else int(value)


def _header(language: str) -> str:
    return f"## {translate('console.title', language)}\n{translate('console.subtitle', language)}"


def _status_choices(language: str) -> list[tuple[str, str]]:
    return [(translate(f"console.status_{value}", language), value) for value in STATUS_VALUES]


def _show(
    console: AgentConsole,
    conversation_id: float | None,
    language: str,
    rendered: dict[str, str],
    message: str,
) -> tuple[str, str, str, dict[str, str]]:
    """Return the status line, the transcript, the queue and what is now rendered."""
    try:
        transcript = console.transcript_html(_id(conversation_id), language)
    except ConsoleInputError as error:
        transcript = console.transcript_html(None, language)
        message = message or str(error)
    queue = console.queue_html(language)
    return html.escape(message), transcript, queue, {"queue": queue, "transcript": transcript}


def _refresh(
    console: AgentConsole, conversation_id: float | None, language: str, rendered: dict[str, str]
) -> tuple[Any, Any, Any]:
    """Return the transcript and queue where they changed, so open details stay open."""
    queue = console.queue_html(language)
    try:
        transcript = console.transcript_html(_id(conversation_id), language)
    except ConsoleInputError:
        transcript = rendered.get("transcript", "")
    if queue == rendered.get("queue") and transcript == rendered.get("transcript"):
        return gr.skip(), gr.skip(), gr.skip()
    return (
        gr.skip() if transcript == rendered.get("transcript") else transcript,
        gr.skip() if queue == rendered.get("queue") else queue,
        {"queue": queue, "transcript": transcript},
    )


def _search(
    console: AgentConsole,
    language: str,
    statuses: list[str] | None,
    low_confidence: bool,
    with_fallback: bool,
    with_negative_feedback: bool,
    since: str,
    until: str,
    text: str,
) -> tuple[Any, str]:
    """Return the search results and an empty status line, or the input error."""
    try:
        results = console.search_html(
            language,
            statuses=statuses or (),
            low_confidence=low_confidence,
            with_fallback=with_fallback,
            with_negative_feedback=with_negative_feedback,
            since=since,
            until=until,
            text=text,
        )
    except ConsoleInputError as error:
        return gr.skip(), html.escape(str(error))
    return results, ""


def _relabel(language: str, *, threshold: float) -> tuple[Any, ...]:
    t = functools.partial(translate, language=language)
    return (
        gr.update(value=_header(language)),
        gr.update(label=t("console.language")),
        gr.update(label=t("console.agent_name")),
        gr.update(value=f"### {t('console.queue_heading')}"),
        gr.update(value=f"### {t('console.search_heading')}"),
        gr.update(label=t("console.filter_status"), choices=_status_choices(language)),
        gr.update(label=t("console.filter_low_confidence", threshold=threshold)),
        gr.update(label=t("console.filter_fallback")),
        gr.update(label=t("console.filter_negative")),
        gr.update(label=t("console.filter_since")),
        gr.update(label=t("console.filter_until")),
        gr.update(label=t("console.filter_text")),
        gr.update(value=t("console.search")),
        gr.update(label=t("console.conversation_id")),
        gr.update(value=t("console.open")),
        gr.update(value=t("console.claim")),
        gr.update(value=t("console.hand_back")),
        gr.update(value=t("console.close")),
        gr.update(placeholder=t("console.reply_placeholder")),
        gr.update(value=t("console.reply")),
        gr.update(value=f"### {t('console.correction_heading')}"),
        gr.update(label=t("console.correction_message_id")),
        gr.update(label=t("console.correction_text")),
        gr.update(value=t("console.correction_save")),
    )
