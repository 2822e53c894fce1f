"""The dialog manager: one customer message in, one explained reply out.

It owns storage and ordering; what to answer is decided by :mod:`bot.policy`. Each turn:

1. the input guard rejects empty or over-long text (see :mod:`bot.guard`);
2. the turn lock of the conversation is taken, so turns are answered one at a time;
3. intent and entities are read (see :mod:`bot.understanding`) and stored on the
   customer's message;
4. a conversation that waits for an agent or is with one gets no bot reply: the turn
   is stored for the agent (path ``forwarded``);
5. otherwise the policy decides, and the reply is stored with its explanation, the
   slot memory and the conversation's counters. A handoff puts the conversation in the
   agent queue. If an agent claimed the conversation while the reply was being written,
   the reply is dropped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.grounded import GroundedAnswerer
from bot.guard import check_message
from bot.handoff import request_handoff
from bot.i18n import normalize_language
from bot.model_switch import ModelSwitch, ServedModel
from bot.policy import Policy, TurnContext
from bot.reply import Decision, Reply, ReplyPath
from bot.slots import DialogState
from bot.templates import TemplateSet
from bot.turn_lock import TurnLock
from bot.understanding import Understander, Understanding
from retrieval.language import detect_language
from retrieval.retriever import HybridRetriever
from storage import repository
from storage.models import Conversation, ConversationStatus, Message, Role

logger = logging.getLogger(__name__)

# Statuses in which customer turns go to a human and the bot stays silent.
_HUMAN_STATUSES = (ConversationStatus.WAITING, ConversationStatus.AGENT)


class ConversationClosedError(Exception):
    """A message was posted to a closed conversation, such as an imported one."""


class DialogManager:
    """Answers customer messages and stores every turn.

    Example:
        >>> manager = DialogManager(session_factory=..., retriever=..., models=...,
        ...                         turn_lock=..., settings=Settings())
        >>> conversation_id = manager.start_conversation(language="en")
        >>> manager.respond(conversation_id, "How do I reset my password?").path
    """

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        retriever: HybridRetriever,
        models: ModelSwitch,
        turn_lock: TurnLock,
        settings: Settings,
        understander: Understander | None = None,
        templates: TemplateSet | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.retriever = retriever
        self.models = models
        self.turn_lock = turn_lock
        self.settings = settings
        self.understander = understander
        self.policy = Policy(GroundedAnswerer(retriever, settings), templates, settings)

    @property
    def templates(self) -> TemplateSet | None:
        """The answer templates in use."""
        return self.policy.templates

    def start_conversation(
        self, *, channel: str = "chat", language: str | None = None, external_id: str | None = None
    ) -> int:
        """Create a conversation and return its id."""
        with self.session_factory.begin() as session:
            conversation = repository.create_conversation(
                session,
                external_id=external_id,
                channel=channel,
                language=normalize_language(language) if language else None,
            )
        logger.info("Started conversation id=%s channel=%s", conversation.id, channel)
        return conversation.id

    def respond(self, conversation_id: int, text: str) -> Reply:
        """Store a customer message, answer it and store the answer.

        Turns of one conversation are answered one at a time, also across processes.

        Raises:
            bot.guard.InvalidMessageError: If the message is empty or too long.
            storage.errors.NotFoundError: If the conversation does not exist.
            ConversationClosedError: If the conversation is closed.
            bot.turn_lock.TurnLockTimeoutError: If an earlier turn holds the
                conversation for longer than ``turn_lock_timeout_s``.
        """
        started = time.perf_counter()
        guard = check_message(text, max_chars=self.settings.max_message_chars)

        with self.turn_lock.hold(conversation_id, timeout_s=self.settings.turn_lock_timeout_s):
            waited_ms = (time.perf_counter() - started) * 1000
            understanding = self._understand(guard.text)
            history_size = max(
                2 * self.settings.generation.history_turns,
                2 * self.settings.policy.handoff_after_fallbacks + 2,
            )
            with self.session_factory.begin() as session:
                conversation = repository.get_conversation(session, conversation_id)
                if conversation.status is ConversationStatus.CLOSED:
                    raise ConversationClosedError(
                        f"conversation {conversation_id} is closed: start a new conversation"
                    )
                history = repository.list_messages(
                    session, conversation_id=conversation_id, last=history_size
                )
                language = self._detect_turn_language(guard.text, conversation.language)
                customer_message = repository.add_message(
                    session,
                    conversation=conversation,
                    role=Role.CUSTOMER,
                    text=guard.text,
                    meta={"language": language},
                    **_understanding_columns(understanding),
                )
                _track_confidence(conversation, understanding)
                status = conversation.status
                state = DialogState.from_json(conversation.dialog_state)
                customer_message_id = customer_message.id

            timings: dict[str, float] = {"lock_wait": round(waited_ms, 1)}
            if understanding is not None:
                timings["nlu"] = round(understanding.elapsed_ms, 1)
            if status in _HUMAN_STATUSES:
                return self._forwarded(
                    conversation_id,
                    customer_message_id,
                    language,
                    status,
                    timings,
                    started,
                    understanding,
                )

            # Taken once, so the whole turn uses one model even if ops switch versions now.
            served = self.models.current
            turn = TurnContext(
                text=guard.text,
                block_reason=guard.block_reason,
                language=language,
                understanding=understanding,
                history=[m for m in history if m.role in (Role.CUSTOMER, Role.BOT, Role.AGENT)],
                state=state,
                recent_fallbacks=_fallbacks_in_a_row(history),
                generator=served.generator,
                timings=timings,
            )
            decision = self.policy.decide(turn)
            timings["total"] = round((time.perf_counter() - started) * 1000, 1)
            reply = self._store_reply(
                conversation_id, customer_message_id, decision, turn, served, understanding
            )

        logger.info(
            "Answered conversation id=%s message id=%s path=%s reason=%s total_ms=%.0f",
            conversation_id,
            reply.message_id,
            reply.path.value,
            decision.reason,
            timings["total"],
        )
        return reply

    def get_transcript(self, conversation_id: int) -> tuple[Conversation, list[Message]]:
        """Return the conversation and all its messages in order.

        Raises:
            storage.errors.NotFoundError: If the conversation does not exist.
        """
        with self.session_factory() as session:
            conversation = repository.get_conversation(session, conversation_id)
            messages = repository.list_messages(session, conversation_id=conversation_id)
        return conversation, messages

    def _understand(self, text: str) -> Understanding | None:
        """Run the NLU models on a turn; None when NLU is off.

        Turns that get a fixed reply from the guard are understood too, so every customer
        message has its intent columns set (out of scope, reason ``no_content``, for
        emoji or punctuation only).
        """
        if self.understander is None:
            return None
        # The models of the text's own script serve it; text without letters has no
        # intent whatever the conversation's language, so detection alone is enough.
        return self.understander.understand(text, detect_language(text))

    def _detect_turn_language(self, text: str, conversation_language: str | None) -> str:
        if any(char.isalpha() for char in text):
            return detect_language(text)
        return conversation_language or self.settings.default_language

    def _forwarded(
        self,
        conversation_id: int,
        customer_message_id: int,
        language: str,
        status: ConversationStatus,
        timings: dict[str, float],
        started: float | None = None,
        understanding: Understanding | None = None,
    ) -> Reply:
        if started is not None:
            timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        explanation: dict[str, Any] = {
            "path": ReplyPath.FORWARDED.value,
            "reason": f"conversation_{status.value}",
        }
        if understanding is not None:
            explanation["nlu"] = understanding.to_explanation()
        logger.info(
            "Forwarded customer message id=%s of conversation id=%s status=%s to the agent",
            customer_message_id,
            conversation_id,
            status.value,
        )
        return Reply(
            conversation_id=conversation_id,
            customer_message_id=customer_message_id,
            message_id=None,
            text="",
            path=ReplyPath.FORWARDED,
            language=language,
            timings_ms=timings,
            explanation=explanation,
            conversation_status=status.value,
        )

    def _store_reply(
        self,
        conversation_id: int,
        customer_message_id: int,
        decision: Decision,
        turn: TurnContext,
        served: ServedModel,
        understanding: Understanding | None,
    ) -> Reply:
        explanation: dict[str, Any] = {
            "path": decision.path.value,
            "reason": decision.reason,
            "language": turn.language,
            "models": {
                "embedding": self.retriever.embedder.name,
                "generator": served.generator.model_name,
                "dialog_version": served.version or "base",
                "intent_version": understanding.versions.get("intent") if understanding else None,
                "ner_version": understanding.versions.get("ner") if understanding else None,
            },
            "slots": dict(turn.state.values),
            **decision.details,
        }
        if understanding is not None:
            explanation["nlu"] = understanding.to_explanation()
        if decision.handoff_reason is not None:
            explanation["handoff_reason"] = decision.handoff_reason

        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            if conversation.status is not ConversationStatus.BOT:
                # An agent claimed it (or the customer closed it) while the reply was
                # being written: the bot stays silent.
                return self._forwarded(
                    conversation_id,
                    customer_message_id,
                    turn.language,
                    conversation.status,
                    turn.timings,
                    understanding=understanding,
                )
            draft = Reply(
                conversation_id=conversation_id,
                customer_message_id=customer_message_id,
                message_id=0,
                text=decision.text,
                path=decision.path,
                language=turn.language,
                citations=decision.citations,
                timings_ms=turn.timings,
                explanation=explanation,
            )
            bot_message = repository.add_message(
                session,
                conversation=conversation,
                role=Role.BOT,
                text=decision.text,
                meta=draft.to_metadata(),
            )
            conversation.dialog_state = turn.state.to_json()
            if decision.path is ReplyPath.FALLBACK:
                conversation.fallback_count = (conversation.fallback_count or 0) + 1
            if decision.handoff_reason is not None:
                request_handoff(session, conversation, decision.handoff_reason)
            status = conversation.status.value
        return Reply(
            **{**draft.__dict__, "message_id": bot_message.id, "conversation_status": status}
        )


def _understanding_columns(understanding: Understanding | None) -> dict[str, Any]:
    """Return the customer message's NLU columns; empty when NLU did not run."""
    if understanding is None:
        return {}
    # Without a working model there is no confidence to store, rather than a confident 0.
    confidence = None
    if understanding.intent.reason not in ("no_model", "model_error"):
        confidence = round(understanding.intent.confidence, 4)
    return {
        "intent": understanding.intent.intent,
        "intent_confidence": confidence,
        "out_of_scope": understanding.intent.out_of_scope,
        "entities": [entity.to_dict() for entity in understanding.entities],
    }


def _track_confidence(conversation: Conversation, understanding: Understanding | None) -> None:
    """Keep the lowest intent confidence of the conversation's understood turns."""
    skipped = ("no_model", "model_error", "no_content", "command")
    if understanding is None or understanding.intent.reason in skipped:
        return
    confidence = round(understanding.intent.confidence, 4)
    if (
        conversation.min_intent_confidence is None
        or confidence < conversation.min_intent_confidence
    ):
        conversation.min_intent_confidence = confidence


def _fallbacks_in_a_row(history: list[Message]) -> int:
    """Count the bot's fallback replies since its last other reply or an agent message."""
    count = 0
    for message in reversed(history):
        if message.role == Role.AGENT:
            break
        if message.role != Role.BOT:
            continue
        if message.meta.get("path") != ReplyPath.FALLBACK.value:
            break
        count += 1
    return count
