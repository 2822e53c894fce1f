"""HTML of the agent console: the queue, search results and a conversation's transcript.

Every stored value (message text, agent names, titles, explanation values) goes through
``html.escape``, so text that looks like HTML is shown as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from bot.i18n import translate
from ui.web.explanation import explanation_lines

CONSOLE_CSS = """
.sb-table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
.sb-table th, .sb-table td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
.sb-msg { border-left: 4px solid #bbb; margin: 6px 0; padding: 4px 10px; }
.sb-role-customer { border-color: #2f6fde; }
.sb-role-bot { border-color: #999; }
.sb-role-agent { border-color: #1d9a5b; }
.sb-role-system { border-color: #e0a000; font-style: italic; }
.sb-meta { color: #666; font-size: 0.8em; }
.sb-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.sb-note { font-size: 0.85em; margin-top: 2px; }
.sb-explanation dt { font-weight: 600; }
.sb-explanation dd { margin: 0 0 4px 12px; overflow-wrap: anywhere; }
"""


@dataclass(frozen=True)
class ConversationRow:
    """What the queue and the search list show of one conversation."""

    conversation_id: int
    status: str
    language: str | None
    agent: str | None
    handoff_reason: str | None
    handoff_at: datetime | None
    updated_at: datetime | None
    message_count: int = 0


@dataclass(frozen=True)
class TranscriptMessage:
    """One stored message, copied out of its database session."""

    message_id: int
    seq: int
    role: str
    text: str
    created_at: datetime | None
    meta: dict[str, Any]
    intent: str | None
    intent_confidence: float | None
    entities: list[dict[str, Any]] | None


@dataclass(frozen=True)
class TranscriptHeader:
    """The conversation fields shown above its messages."""

    conversation_id: int
    status: str
    agent: str | None
    channel: str
    handoff_reason: str | None
    rating: int | None


def format_time(value: datetime | None) -> str:
    """Return ``YYYY-MM-DD HH:MM:SS`` in UTC; SQLite returns naive datetimes that are UTC."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S")


def status_label(status: str, language: str) -> str:
    """Return the translated name of a conversation status."""
    return translate(f"console.status_{status}", language)


def render_queue(rows: Sequence[ConversationRow], language: str) -> str:
    """Return the queue as an HTML table, or a sentence when it is empty."""
    if not rows:
        return (
            f"<p id='console-queue-empty'>{escape(translate('console.queue_empty', language))}</p>"
        )
    columns = ["column_id", "column_waiting_since", "column_reason", "column_language"]
    body = [
        [
            f"#{row.conversation_id}",
            format_time(row.handoff_at),
            row.handoff_reason or "",
            row.language or "",
        ]
        for row in rows
    ]
    return _table("console-queue-table", columns, body, language)


def render_search_results(rows: Sequence[ConversationRow], language: str) -> str:
    """Return the search results as an HTML table, or a sentence when none match."""
    if not rows:
        return f"<p>{escape(translate('console.search_empty', language))}</p>"
    columns = [
        "column_id",
        "column_status",
        "column_agent",
        "column_reason",
        "column_updated",
        "column_messages",
    ]
    body = [
        [
            f"#{row.conversation_id}",
            status_label(row.status, language),
            row.agent or "",
            row.handoff_reason or "",
            format_time(row.updated_at),
            str(row.message_count),
        ]
        for row in rows
    ]
    count = escape(translate("console.search_count", language, count=len(rows)))
    return f"<p>{count}</p>" + _table("console-search-table", columns, body, language)


def render_transcript(
    header: TranscriptHeader,
    messages: Sequence[TranscriptMessage],
    feedback: dict[int, int],
    corrections: dict[int, str],
    language: str,
) -> str:
    """Return the transcript: a summary line, then every message with its notes.

    Args:
        header: The conversation's status, agent, channel, handoff reason and rating.
        messages: The messages in order.
        feedback: Thumbs value (+1 or -1) by bot message id.
        corrections: Latest correction text by bot message id.
        language: Language of the labels.
    """
    none = translate("console.none", language)
    summary = translate(
        "console.transcript_summary",
        language,
        conversation_id=header.conversation_id,
        status=status_label(header.status, language),
        agent=header.agent or none,
        channel=header.channel,
        reason=header.handoff_reason or none,
    )
    parts = [f"<p id='console-transcript-summary'><b>{escape(summary)}</b></p>"]
    if header.rating is not None:
        rating = translate("console.rating", language, rating=header.rating)
        parts.append(f"<p>{escape(rating)}</p>")
    parts.extend(_render_message(message, feedback, corrections, language) for message in messages)
    return "<div id='console-transcript-body'>" + "\n".join(parts) + "</div>"


def _render_message(
    message: TranscriptMessage,
    feedback: dict[int, int],
    corrections: dict[int, str],
    language: str,
) -> str:
    if message.role == "agent":
        author = translate("console.role_agent", language, agent=message.meta.get("agent", ""))
    else:
        author = translate(f"console.role_{message.role}", language)
    meta_line = f"{author} · #{message.message_id} · {format_time(message.created_at)}"
    if message.role == "bot" and message.meta.get("path"):
        meta_line += f" · {message.meta['path']}"
    if message.role == "customer" and message.intent_confidence is not None:
        meta_line += f" · {message.intent or 'out_of_scope'} ({message.intent_confidence:.2f})"

    element_id = f"console-msg-{message.message_id}"
    parts = [
        f"<div class='sb-msg sb-role-{escape(message.role)}' id='{element_id}'>",
        f"<div class='sb-meta'>{escape(meta_line)}</div>",
        f"<div class='sb-text'>{escape(message.text)}</div>",
    ]
    if message.role == "customer" and message.entities:
        entities = ", ".join(f"{e.get('type')}={e.get('value')}" for e in message.entities)
        label = translate("console.explain_entities", language)
        parts.append(f"<div class='sb-note'>{escape(label)}: {escape(entities)}</div>")
    if message.message_id in feedback:
        key = "console.feedback_up" if feedback[message.message_id] > 0 else "console.feedback_down"
        parts.append(f"<div class='sb-note'>{escape(translate(key, language))}</div>")
    if message.message_id in corrections:
        label = translate("console.correction_label", language)
        text = corrections[message.message_id]
        parts.append(
            f"<div class='sb-note sb-correction'><b>{escape(label)}:</b> "
            f"<span class='sb-text'>{escape(text)}</span></div>"
        )
    if message.role == "bot":
        parts.append(_render_explanation(message.meta, language))
    parts.append("</div>")
    return "".join(parts)


def _render_explanation(meta: dict[str, Any], language: str) -> str:
    rows = "".join(
        f"<dt>{escape(translate(key, language))}</dt><dd>{escape(value)}</dd>"
        for key, value in explanation_lines(meta)
    )
    if not rows:
        return ""
    summary = escape(translate("console.explanation", language))
    return f"<details class='sb-explanation'><summary>{summary}</summary><dl>{rows}</dl></details>"


def _table(element_id: str, columns: list[str], body: list[list[str]], language: str) -> str:
    head = "".join(f"<th>{escape(translate(f'console.{c}', language))}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in body
    )
    return (
        f"<table class='sb-table' id='{element_id}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
