"""Human handoff: the queue's state changes and agent replies.

A conversation moves between four states (``storage.models.ConversationStatus``)::

    bot ──handoff──> waiting ──claim──> agent ──hand back──> bot
     │                  │                 │
     └──────────────────┴──── close ──────┴──> closed

While a conversation is waiting or with an agent the bot stays silent; customer turns are
stored for the agent. Claiming is one conditional UPDATE, so when two agents claim at
once exactly one wins, on SQLite and PostgreSQL alike. Each change adds a system message
to the transcript, in the conversation's language, which the customer chat shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.guard import check_message
from bot.i18n import translate
from bot.turn_lock import TurnLock
from storage import repository
from storage.models import Conversation, ConversationStatus, Role, utc_now

logger = logging.getLogger(__name__)

# Maximum length of an agent name; names are shown to customers and stored on conversations.
MAX_AGENT_NAME_CHARS = 255


class HandoffError(Exception):
    """An agent action does not fit the conversation's state (HTTP 409)."""


class ConversationClosedHandoffError(HandoffError):
    """The conversation is closed, so no agent can take it over or reply in it."""


class ConversationHeldError(HandoffError):
    """The conversation is held by another agent."""

    def __init__(self, conversation_id: int, holder: str | None) -> None:
        super().__init__(
            f"conversation {conversation_id} is held by agent {holder!r}: pick another "
            "conversation from the queue, or ask that agent to hand it back"
        )
        self.holder = holder


@dataclass(frozen=True)
class AgentMessage:
    """A stored agent or system message."""

    conversation_id: int
    message_id: int
    seq: int
    text: str


def clean_agent_name(agent: str) -> str:
    """Return the trimmed agent name.

    Raises:
        ValueError: If the name is empty or longer than 255 characters.
    """
    name = " ".join(str(agent).split())
    if not name:
        raise ValueError("agent name is empty: send the name agents see in the console")
    if len(name) > MAX_AGENT_NAME_CHARS:
        raise ValueError(
            f"agent name has {len(name)} characters, more than {MAX_AGENT_NAME_CHARS}: shorten it"
        )
    return name


def request_handoff(session: Session, conversation: Conversation, reason: str) -> None:
    """Put a bot conversation in the agent queue; the caller stores the notice to the customer."""
    if conversation.status is not ConversationStatus.BOT:
        return
    conversation.status = ConversationStatus.WAITING
    conversation.handoff_reason = reason[:64]
    conversation.handoff_at = utc_now()
    logger.info("Queued conversation id=%s for an agent reason=%s", conversation.id, reason)


class HandoffService:
    """Agent actions on conversations: claim, reply, hand back, close.

    Args:
        session_factory: Database sessions.
        turn_lock: The lock that orders the messages of one conversation.
        settings: Runtime settings (message length limit, lock timeout).
    """

    def __init__(
        self, session_factory: sessionmaker[Session], turn_lock: TurnLock, settings: Settings
    ) -> None:
        self.session_factory = session_factory
        self.turn_lock = turn_lock
        self.settings = settings

    def claim(self, conversation_id: int, agent: str) -> Conversation:
        """Give the conversation to ``agent``; claiming one's own conversation again is a no-op.

        Raises:
            storage.errors.NotFoundError: If the conversation does not exist.
            ConversationHeldError: If another agent holds it.
            ConversationClosedHandoffError: If it is closed.
        """
        agent = clean_agent_name(agent)
        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            already_held = (
                conversation.status is ConversationStatus.AGENT and conversation.agent == agent
            )
            result = session.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    or_(
                        Conversation.status.in_(
                            [ConversationStatus.BOT, ConversationStatus.WAITING]
                        ),
                        (Conversation.status == ConversationStatus.AGENT)
                        & (Conversation.agent == agent),
                    ),
                )
                .values(status=ConversationStatus.AGENT, agent=agent, updated_at=utc_now())
                .execution_options(synchronize_session=False)
            )
            # Read the row again: another agent may have changed it since the first read.
            session.refresh(conversation)
            if result.rowcount == 0:
                if conversation.status is ConversationStatus.CLOSED:
                    raise ConversationClosedHandoffError(
                        f"conversation {conversation_id} is closed: it cannot be claimed"
                    )
                raise ConversationHeldError(conversation_id, conversation.agent)
            if conversation.handoff_at is None:
                conversation.handoff_at = utc_now()
                conversation.handoff_reason = "agent_takeover"
        if already_held:
            return self._load(conversation_id)
        logger.info("Agent claimed conversation id=%s agent=%s", conversation_id, agent)
        self._add_system_message(conversation_id, "handoff.agent_joined", agent=agent)
        return self._load(conversation_id)

    def reply(self, conversation_id: int, agent: str, text: str) -> AgentMessage:
        """Store an agent's message to the customer.

        Raises:
            bot.guard.InvalidMessageError: If the text is empty or too long.
            storage.errors.NotFoundError: If the conversation does not exist.
            ConversationClosedHandoffError: If the conversation is closed.
            HandoffError: If ``agent`` has not claimed the conversation.
        """
        agent = clean_agent_name(agent)
        cleaned = check_message(text, max_chars=self.settings.max_message_chars).text
        with self.turn_lock.hold(conversation_id, timeout_s=self.settings.turn_lock_timeout_s):
            with self.session_factory.begin() as session:
                conversation = repository.get_conversation(session, conversation_id)
                self._require_holder(conversation, agent)
                message = repository.add_message(
                    session,
                    conversation=conversation,
                    role=Role.AGENT,
                    text=cleaned,
                    meta={"agent": agent},
                )
                conversation.updated_at = utc_now()
                stored = AgentMessage(conversation_id, message.id, message.seq, message.text)
        logger.info(
            "Agent replied conversation id=%s message id=%s agent=%s",
            conversation_id,
            stored.message_id,
            agent,
        )
        return stored

    def hand_back(self, conversation_id: int, agent: str) -> Conversation:
        """Return the conversation to the bot.

        Raises:
            storage.errors.NotFoundError: If the conversation does not exist.
            ConversationClosedHandoffError: If the conversation is closed.
            HandoffError: If ``agent`` has not claimed it.
        """
        agent = clean_agent_name(agent)
        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            self._require_holder(conversation, agent)
            conversation.status = ConversationStatus.BOT
            conversation.agent = None
            # The bot starts afresh: no template waits for a slot the agent may have
            # asked about already.
            conversation.dialog_state = {**(conversation.dialog_state or {}), "pending": None}
        logger.info(
            "Agent handed conversation id=%s back to the bot agent=%s", conversation_id, agent
        )
        self._add_system_message(conversation_id, "handoff.handed_back", agent=agent)
        return self._load(conversation_id)

    def close(self, conversation_id: int, agent: str | None = None) -> Conversation:
        """Close the conversation, as its agent or (``agent`` None) as the customer.

        Closing a closed conversation changes nothing.

        Raises:
            storage.errors.NotFoundError: If the conversation does not exist.
            HandoffError: If another agent holds it.
        """
        if agent is not None:
            agent = clean_agent_name(agent)
        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            if conversation.status is ConversationStatus.CLOSED:
                return conversation
            if (
                agent is not None
                and conversation.status is ConversationStatus.AGENT
                and conversation.agent != agent
            ):
                raise ConversationHeldError(conversation_id, conversation.agent)
            conversation.status = ConversationStatus.CLOSED
            conversation.closed_at = utc_now()
        logger.info("Closed conversation id=%s by=%s", conversation_id, agent or "customer")
        self._add_system_message(conversation_id, "handoff.closed")
        return self._load(conversation_id)

    def _require_holder(self, conversation: Conversation, agent: str) -> None:
        if conversation.status is ConversationStatus.CLOSED:
            raise ConversationClosedHandoffError(
                f"conversation {conversation.id} is closed: start a new conversation"
            )
        if conversation.status is not ConversationStatus.AGENT:
            raise HandoffError(
                f"conversation {conversation.id} is {conversation.status.value}, not with an "
                "agent: claim it first"
            )
        if conversation.agent != agent:
            raise ConversationHeldError(conversation.id, conversation.agent)

    def _add_system_message(self, conversation_id: int, key: str, **values: str) -> None:
        with self.turn_lock.hold(conversation_id, timeout_s=self.settings.turn_lock_timeout_s):
            with self.session_factory.begin() as session:
                conversation = repository.get_conversation(session, conversation_id)
                language = conversation_language(
                    session, conversation, self.settings.default_language
                )
                repository.add_message(
                    session,
                    conversation=conversation,
                    role=Role.SYSTEM,
                    text=translate(key, language, **values),
                    meta={"event": key.split(".", 1)[1], **values},
                )

    def _load(self, conversation_id: int) -> Conversation:
        with self.session_factory() as session:
            conversation = repository.get_conversation(session, conversation_id)
            session.expunge(conversation)
            return conversation


def conversation_language(session: Session, conversation: Conversation, default: str) -> str:
    """Return the language to tell the customer things in.

    The conversation's chosen language when set, else the language of its last customer
    turn, else ``default``.
    """
    if conversation.language:
        return conversation.language
    for message in reversed(
        repository.list_messages(session, conversation_id=conversation.id, last=10)
    ):
        if message.role == Role.CUSTOMER and message.meta.get("language"):
            return str(message.meta["language"])
    return default
