"""Feedback on replies: customer thumbs and ratings, and agent corrections.

A thumbs down on a bot reply hands the conversation to an agent when
``policy.handoff_on_negative_feedback`` is on. A correction is an agent's right answer to
a bot reply; ``supportbot finetune`` uses it as the best answer for the question before it
(see ``finetune.pairs``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.guard import check_message
from bot.handoff import clean_agent_name, conversation_language, request_handoff
from bot.i18n import translate
from bot.reply import ReplyPath
from bot.turn_lock import TurnLock
from storage import repository
from storage.errors import NotFoundError
from storage.models import ConversationStatus, Correction, Feedback, Message, Role

logger = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class FeedbackResult:
    """Outcome of a thumbs up or down.

    Attributes:
        message_id: The rated bot message.
        value: +1 or -1.
        handed_off: Whether the thumbs down put the conversation in the agent queue.
        handoff_message_id: The bot message with the handoff notice, if any.
    """

    message_id: int
    value: int
    handed_off: bool = False
    handoff_message_id: int | None = None


class FeedbackService:
    """Stores thumbs, ratings and corrections.

    Args:
        session_factory: Database sessions.
        turn_lock: The lock that orders the messages of one conversation.
        settings: Runtime settings; ``policy.handoff_on_negative_feedback`` is read.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], turn_lock: TurnLock, settings: Settings
    ) -> None:
        self.session_factory = session_factory
        self.turn_lock = turn_lock
        self.settings = settings

    def rate_reply(
        self, conversation_id: int, message_id: int, value: int, comment: str | None = None
    ) -> FeedbackResult:
        """Store a thumbs up (1) or down (-1) on a bot reply; a later vote replaces it.

        Raises:
            ValueError: If ``value`` is not 1 or -1, the comment is too long, or the
                message is no bot reply.
            storage.errors.NotFoundError: If the message is not a bot message of that
                conversation.
        """
        if value not in (1, -1):
            raise ValueError(f"feedback value {value!r} is not 1 (thumbs up) or -1 (thumbs down)")
        if comment is not None and len(comment) > MAX_COMMENT_CHARS:
            raise ValueError(
                f"feedback comment has {len(comment)} characters, more than {MAX_COMMENT_CHARS}"
            )

        with self.turn_lock.hold(conversation_id, timeout_s=self.settings.turn_lock_timeout_s):
            with self.session_factory.begin() as session:
                message = _bot_message(session, conversation_id, message_id)
                conversation = message.conversation
                feedback = session.scalar(select(Feedback).where(Feedback.message_id == message_id))
                previous = feedback.value if feedback is not None else None
                if feedback is None:
                    feedback = Feedback(message_id=message_id, value=value, comment=comment)
                    session.add(feedback)
                else:
                    feedback.value = value
                    feedback.comment = comment
                if value == -1 and previous != -1:
                    conversation.negative_feedback_count = (
                        conversation.negative_feedback_count or 0
                    ) + 1
                elif value == 1 and previous == -1:
                    conversation.negative_feedback_count = max(
                        0, (conversation.negative_feedback_count or 0) - 1
                    )

                handoff_message_id = None
                if (
                    value == -1
                    and self.settings.policy.handoff_on_negative_feedback
                    and conversation.status is ConversationStatus.BOT
                ):
                    request_handoff(session, conversation, "negative_feedback")
                    language = conversation_language(
                        session, conversation, self.settings.default_language
                    )
                    text = translate("reply.handoff", language)
                    notice = repository.add_message(
                        session,
                        conversation=conversation,
                        role=Role.BOT,
                        text=text,
                        meta={
                            "path": ReplyPath.HANDOFF.value,
                            "language": language,
                            "citations": [],
                            "timings_ms": {},
                            "explanation": {
                                "path": ReplyPath.HANDOFF.value,
                                "reason": "negative_feedback",
                                "rated_message_id": message_id,
                            },
                        },
                    )
                    handoff_message_id = notice.id
        logger.info(
            "Stored feedback conversation id=%s message id=%s value=%d handoff=%s",
            conversation_id,
            message_id,
            value,
            handoff_message_id is not None,
        )
        return FeedbackResult(message_id, value, handoff_message_id is not None, handoff_message_id)

    def rate_conversation(self, conversation_id: int, rating: int) -> None:
        """Store the customer's rating of the conversation, 1 (worst) to 5 (best).

        Raises:
            ValueError: If ``rating`` is outside 1 to 5.
            storage.errors.NotFoundError: If the conversation does not exist.
        """
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise ValueError(f"rating {rating!r} is not a whole number from 1 to 5")
        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            conversation.rating = rating
        logger.info("Stored rating conversation id=%s rating=%d", conversation_id, rating)

    def correct(self, conversation_id: int, message_id: int, agent: str, text: str) -> int:
        """Store an agent's right answer to a bot reply and return the correction's id.

        Raises:
            ValueError: If the agent name is empty or too long, or the message is no bot
                reply.
            bot.guard.InvalidMessageError: If the text is empty or too long.
            storage.errors.NotFoundError: If the message is not a bot message of that
                conversation.
        """
        agent = clean_agent_name(agent)
        cleaned = check_message(text, max_chars=self.settings.max_message_chars).text
        with self.session_factory.begin() as session:
            _bot_message(session, conversation_id, message_id)
            correction = Correction(message_id=message_id, text=cleaned, author=agent)
            session.add(correction)
            session.flush()
            correction_id = correction.id
        logger.info(
            "Stored correction id=%s conversation id=%s message id=%s agent=%s",
            correction_id,
            conversation_id,
            message_id,
            agent,
        )
        return correction_id

    def corrections_of(self, conversation_id: int) -> dict[int, str]:
        """Return the latest correction text of each corrected message of a conversation."""
        with self.session_factory() as session:
            rows = session.execute(
                select(Correction.message_id, Correction.text)
                .join(Message, Message.id == Correction.message_id)
                .where(Message.conversation_id == conversation_id)
                .order_by(Correction.id)
            )
            return {message_id: text for message_id, text in rows}

    def feedback_of(self, conversation_id: int) -> dict[int, int]:
        """Return the thumbs value of each rated message of a conversation."""
        with self.session_factory() as session:
            rows = session.execute(
                select(Feedback.message_id, Feedback.value)
                .join(Message, Message.id == Feedback.message_id)
                .where(Message.conversation_id == conversation_id)
            )
            return dict(rows.all())


def _bot_message(session: Session, conversation_id: int, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None or message.conversation_id != conversation_id:
        raise NotFoundError(f"message {message_id} not found in conversation {conversation_id}")
    if message.role != Role.BOT:
        raise ValueError(
            f"message {message_id} is a {message.role.value} message: only bot replies take "
            "feedback and corrections"
        )
    return message
