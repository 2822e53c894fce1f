"""What the agent console does: read the queue and transcripts, and run agent actions.

Every action returns a status line in the agent's language. Errors that an agent can fix
(another agent holds the conversation, an empty reply, a wrong id) become that status
line instead of an exception, and are logged with the ids involved.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.guard import InvalidMessageError
from bot.handoff import (
    MAX_AGENT_NAME_CHARS,
    ConversationClosedHandoffError,
    ConversationHeldError,
    HandoffError,
    clean_agent_name,
)
from bot.i18n import translate
from bot.runtime import BotRuntime
from bot.turn_lock import TurnLockTimeoutError
from storage import repository
from storage.conversation_queries import (
    ConversationFilter,
    count_messages_by_conversation,
    list_queue,
    search_conversations,
)
from storage.errors import NotFoundError
from storage.models import Conversation, ConversationStatus
from ui.web.transcript import (
    ConversationRow,
    TranscriptHeader,
    TranscriptMessage,
    render_queue,
    render_search_results,
    render_transcript,
)

logger = logging.getLogger(__name__)

# Rows shown in the queue and in one page of search results.
MAX_ROWS = 100
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d")


class ConsoleInputError(ValueError):
    """A console field holds a value the console cannot use; the message is translated."""


@dataclass(frozen=True)
class ActionResult:
    """Outcome of an agent action: whether it was done, and the status line to show."""

    ok: bool
    message: str


class AgentConsole:
    """The agent console's reads and actions on one runtime.

    Args:
        runtime: The serving components; ``handoff``, ``feedback``, ``session_factory``
            and ``settings.policy`` are used.
    """

    def __init__(self, runtime: BotRuntime) -> None:
        self.runtime = runtime

    def queue_html(self, language: str) -> str:
        """Return the waiting conversations, the longest waiting first, as HTML."""
        with self.runtime.session_factory() as session:
            rows = [_row(conversation) for conversation in list_queue(session, limit=MAX_ROWS)]
        return render_queue(rows, language)

    def search_html(
        self,
        language: str,
        *,
        statuses: Sequence[str] = (),
        low_confidence: bool = False,
        with_fallback: bool = False,
        with_negative_feedback: bool = False,
        since: str = "",
        until: str = "",
        text: str = "",
    ) -> str:
        """Return the conversations matching the filters as HTML.

        Raises:
            ConsoleInputError: If ``since`` or ``until`` is not a date.
        """
        conversation_filter = ConversationFilter(
            statuses=tuple(ConversationStatus(status) for status in statuses),
            low_confidence_below=(
                self.runtime.settings.policy.template_min_confidence if low_confidence else None
            ),
            with_fallback=with_fallback,
            with_negative_feedback=with_negative_feedback,
            since=parse_date(since, "console.filter_since", language),
            until=parse_date(until, "console.filter_until", language, end_of_day=True),
            text=text or None,
        )
        with self.runtime.session_factory() as session:
            found = search_conversations(session, conversation_filter, limit=MAX_ROWS)
            counts = count_messages_by_conversation(session, [c.id for c in found])
            rows = [_row(c, counts.get(c.id, 0)) for c in found]
        return render_search_results(rows, language)

    def transcript_html(self, conversation_id: int | None, language: str) -> str:
        """Return the transcript of a conversation, or a hint when none is open.

        Raises:
            ConsoleInputError: If the conversation does not exist.
        """
        if conversation_id is None:
            return f"<p>{html.escape(translate('console.transcript_empty', language))}</p>"
        try:
            with self.runtime.session_factory() as session:
                conversation = repository.get_conversation(session, conversation_id)
                header = _header(conversation)
                messages = [
                    _message(message)
                    for message in repository.list_messages(
                        session, conversation_id=conversation_id
                    )
                ]
        except NotFoundError as error:
            raise ConsoleInputError(
                translate("console.error_not_found", language, conversation_id=conversation_id)
            ) from error
        feedback = self.runtime.feedback.feedback_of(conversation_id)
        corrections = self.runtime.feedback.corrections_of(conversation_id)
        return render_transcript(header, messages, feedback, corrections, language)

    def claim(self, conversation_id: int | None, agent: str, language: str) -> ActionResult:
        """Take the conversation over as ``agent``; return the status line."""
        return self._act(
            "claim",
            conversation_id,
            agent,
            language,
            lambda cid, name: self.runtime.handoff.claim(cid, name),
            "console.claimed",
        )

    def reply(
        self, conversation_id: int | None, agent: str, text: str, language: str
    ) -> ActionResult:
        """Send ``text`` to the customer as ``agent``; return the status line."""
        return self._act(
            "reply",
            conversation_id,
            agent,
            language,
            lambda cid, name: self.runtime.handoff.reply(cid, name, text),
            "console.replied",
        )

    def hand_back(self, conversation_id: int | None, agent: str, language: str) -> ActionResult:
        """Return the conversation to the bot; return the status line."""
        return self._act(
            "hand_back",
            conversation_id,
            agent,
            language,
            lambda cid, name: self.runtime.handoff.hand_back(cid, name),
            "console.handed_back",
        )

    def close(self, conversation_id: int | None, agent: str, language: str) -> ActionResult:
        """Close the conversation as ``agent``; return the status line."""
        return self._act(
            "close",
            conversation_id,
            agent,
            language,
            lambda cid, name: self.runtime.handoff.close(cid, name),
            "console.closed",
        )

    def correct(
        self,
        conversation_id: int | None,
        agent: str,
        message_id: int | None,
        text: str,
        language: str,
    ) -> ActionResult:
        """Store ``text`` as the right answer to bot message ``message_id``; return the status."""
        if message_id is None:
            return _failed("console.error_no_message", language)
        message_id = int(message_id)
        try:
            return self._act(
                "correct",
                conversation_id,
                agent,
                language,
                lambda cid, name: self.runtime.feedback.correct(cid, message_id, name, text),
                "console.corrected",
                message_id=message_id,
            )
        except (NotFoundError, ValueError) as error:
            logger.warning(
                "Console correction rejected conversation id=%s message id=%s: %s",
                conversation_id,
                message_id,
                error,
            )
            key = (
                "console.error_message_not_found"
                if isinstance(error, NotFoundError)
                else "console.error_not_bot_reply"
            )
            return _failed(key, language, conversation_id=conversation_id, message_id=message_id)

    def _act(
        self,
        action: str,
        conversation_id: int | None,
        agent: str,
        language: str,
        run: Callable[[int, str], object],
        done_key: str,
        **values: object,
    ) -> ActionResult:
        """Run one agent action and translate the errors an agent can fix.

        Errors other than those listed here propagate; ``correct`` handles its own
        NotFoundError and ValueError about the message.
        """
        if conversation_id is None:
            return _failed("console.error_no_conversation", language)
        conversation_id = int(conversation_id)
        try:
            name = clean_agent_name(agent or "")
        except ValueError:
            count = len(" ".join(str(agent or "").split()))
            if count == 0:
                return _failed("console.error_agent_missing", language)
            return _failed(
                "console.error_agent_too_long",
                language,
                count=count,
                max_chars=MAX_AGENT_NAME_CHARS,
            )

        try:
            if not self._exists(conversation_id):
                return _failed("console.error_not_found", language, conversation_id=conversation_id)
            run(conversation_id, name)
        except ConversationHeldError as error:
            logger.info(
                "Console %s rejected conversation id=%s agent=%s holder=%s",
                action,
                conversation_id,
                name,
                error.holder,
            )
            return _failed(
                "console.error_held",
                language,
                conversation_id=conversation_id,
                holder=error.holder or "",
            )
        except HandoffError as error:
            logger.info(
                "Console %s rejected conversation id=%s: %s", action, conversation_id, error
            )
            key = (
                "console.error_closed"
                if isinstance(error, ConversationClosedHandoffError)
                else "console.error_not_claimed"
            )
            return _failed(key, language, conversation_id=conversation_id)
        except InvalidMessageError as error:
            logger.info("Console %s rejected text conversation id=%s", action, conversation_id)
            key = "console.error_empty" if error.code == "empty" else "console.error_too_long"
            return _failed(key, language, count=error.length, max_chars=error.max_chars)
        except TurnLockTimeoutError:
            logger.warning(
                "Console %s timed out on the turn lock conversation id=%s", action, conversation_id
            )
            return _failed("console.error_busy", language)

        logger.info("Console %s done conversation id=%s agent=%s", action, conversation_id, name)
        return ActionResult(
            True, translate(done_key, language, conversation_id=conversation_id, **values)
        )

    def _exists(self, conversation_id: int) -> bool:
        with self.runtime.session_factory() as session:
            return session.get(Conversation, conversation_id) is not None


def _failed(key: str, language: str, **values: object) -> ActionResult:
    return ActionResult(False, translate(key, language, **values))


def parse_date(
    value: str | None, field_key: str, language: str, *, end_of_day: bool = False
) -> datetime | None:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM`` as UTC; empty text means no limit.

    With ``end_of_day`` a bare date means the end of that day, so an "until" date
    includes the day itself.

    Raises:
        ConsoleInputError: If the text is neither format; the message names the field.
    """
    text = (value or "").strip()
    if not text:
        return None
    for date_format in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, date_format).replace(tzinfo=UTC)
        except ValueError:
            continue
        if end_of_day and date_format == "%Y-%m-%d":
            parsed += timedelta(days=1)
        return parsed
    raise ConsoleInputError(
        translate("console.error_date", language, field=translate(field_key, language), value=text)
    )


def _row(conversation: Conversation, message_count: int = 0) -> ConversationRow:
    return ConversationRow(
        conversation_id=conversation.id,
        status=conversation.status.value,
        language=conversation.language,
        agent=conversation.agent,
        handoff_reason=conversation.handoff_reason,
        handoff_at=conversation.handoff_at,
        updated_at=conversation.updated_at,
        message_count=message_count,
    )


def _header(conversation: Conversation) -> TranscriptHeader:
    return TranscriptHeader(
        conversation_id=conversation.id,
        status=conversation.status.value,
        agent=conversation.agent,
        channel=conversation.channel,
        handoff_reason=conversation.handoff_reason,
        rating=conversation.rating,
    )


def _message(message) -> TranscriptMessage:
    return TranscriptMessage(
        message_id=message.id,
        seq=message.seq,
        role=message.role.value,
        text=message.text,
        created_at=message.created_at,
        meta=dict(message.meta or {}),
        intent=message.intent,
        intent_confidence=message.intent_confidence,
        entities=message.entities,
    )
