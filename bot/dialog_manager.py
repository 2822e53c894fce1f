"""The dialog manager: one customer message in, one explained reply out.

Each turn runs these steps in order:

1. input guard: empty or over-long text is rejected; text without letters or digits
   and requests aimed at the bot's own instructions get a fixed reply;
2. understanding: intent with confidence and out-of-scope verdict, entities and slots,
   stored on the customer's message (see ``bot.understanding``);
3. retrieval over FAQ entries and past agent answers, and over knowledge passages;
4. a stored FAQ or past agent answer whose question matches with a score of at least
   ``retrieval.answer_threshold`` (``answer_threshold_zh`` for questions with CJK
   characters) is returned as it is;
5. otherwise, when the best passage reaches ``retrieval.passage_threshold`` (or
   ``passage_threshold_zh`` for questions with CJK characters), the dialog model writes
   an answer grounded in the passages. The best passage is quoted instead for languages
   the model does not write well, and when the answer's similarity to the passages is
   below ``retrieval.grounding_min_similarity``;
6. otherwise the bot replies that it has no answer and offers a human agent.

Both turns are stored, and the reply carries citations, timings and an explanation.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.generation.base import GenerationError, Generator
from bot.guard import check_message
from bot.i18n import normalize_language, translate
from bot.model_switch import ModelSwitch, ServedModel
from bot.prompting import build_grounded_messages
from bot.reply import Citation, Reply, ReplyPath
from bot.turn_lock import TurnLock
from bot.understanding import Understander, Understanding
from retrieval.language import detect_language, has_cjk
from retrieval.retriever import HybridRetriever, Passage
from storage import repository
from storage.models import ConversationStatus, DocumentKind, Message, Role

logger = logging.getLogger(__name__)

# Characters of a passage quoted when the dialog model does not write the language.
QUOTE_MAX_CHARS = 400
# Passages handed to the dialog model for a grounded answer.
MAX_GROUNDING_PASSAGES = 3
# Kinds whose chunk text is an answer that can be returned as it is.
_STORED_ANSWER_KINDS = (DocumentKind.FAQ, DocumentKind.DIALOG)
# Kinds that may ground a generated answer or be quoted. Past agent replies are left
# out: they answer one customer's question in its conversation, often naming things
# from earlier turns, so they are only reused when the question itself matches.
_PASSAGE_KINDS = (DocumentKind.MARKDOWN, DocumentKind.TEXT, DocumentKind.HTML, DocumentKind.FAQ)
# A sentence with its final punctuation and trailing space, or an unfinished tail.
_SENTENCE = re.compile(r"[^.!?。！？]*[.!?。！？]+\s*|[^.!?。！？]+$")


class ConversationClosedError(Exception):
    """A message was posted to a closed conversation, such as an imported one."""


@dataclass
class _Decision:
    text: str
    path: ReplyPath
    reason: str
    citations: list[Citation] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


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
    ) -> None:
        self.session_factory = session_factory
        self.retriever = retriever
        self.models = models
        self.turn_lock = turn_lock
        self.settings = settings
        self.understander = understander

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
            with self.session_factory.begin() as session:
                conversation = repository.get_conversation(session, conversation_id)
                if conversation.status is ConversationStatus.CLOSED:
                    raise ConversationClosedError(
                        f"conversation {conversation_id} is closed: start a new conversation"
                    )
                history = repository.list_messages(
                    session,
                    conversation_id=conversation_id,
                    last=2 * self.settings.generation.history_turns,
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

            # Taken once, so the whole turn uses one model even if ops switch versions now.
            served = self.models.current
            timings: dict[str, float] = {"lock_wait": round(waited_ms, 1)}
            if understanding is not None:
                timings["nlu"] = round(understanding.elapsed_ms, 1)
            decision = self._decide(
                guard.text, guard.block_reason, language, history, served.generator, timings
            )
            timings["total"] = round((time.perf_counter() - started) * 1000, 1)
            reply = self._store_reply(
                conversation_id,
                customer_message,
                decision,
                language,
                served,
                timings,
                understanding,
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

    def get_transcript(self, conversation_id: int) -> tuple[Any, list[Message]]:
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

    def _decide(
        self,
        text: str,
        block_reason: str | None,
        language: str,
        history: list[Message],
        generator: Generator,
        timings: dict[str, float],
    ) -> _Decision:
        if block_reason is not None:
            reply_text = translate(f"reply.{block_reason}", language)
            return _Decision(reply_text, ReplyPath.FALLBACK, block_reason)

        step = time.perf_counter()
        top_k = self.settings.retrieval.top_k
        answers = self.retriever.retrieve(text, top_k=top_k, kinds=_STORED_ANSWER_KINDS)
        passages = self.retriever.retrieve(text, top_k=top_k, kinds=_PASSAGE_KINDS)
        timings["retrieval"] = round((time.perf_counter() - step) * 1000, 1)
        answer_threshold, passage_threshold = self._thresholds(text)
        details: dict[str, Any] = {
            "stored_answers": [_describe_passage(answer) for answer in answers],
            "retrieved": [_describe_passage(passage) for passage in passages],
            "thresholds": {"answer": answer_threshold, "passage": passage_threshold},
        }

        if answers and answers[0].score >= answer_threshold:
            best_answer = answers[0]
            citations = [_cite(best_answer)]
            return _Decision(
                best_answer.text, ReplyPath.RETRIEVED, "stored_answer", citations, details
            )

        best = passages[0] if passages else None
        if best is None or best.score < passage_threshold:
            reply_text = translate("reply.no_answer", language)
            return _Decision(reply_text, ReplyPath.FALLBACK, "no_relevant_passage", details=details)

        if language not in self.settings.generation.languages:
            return _quote(best, language, "quoted_passage", details)

        grounding = [p for p in passages if p.score >= passage_threshold]
        grounding = grounding[:MAX_GROUNDING_PASSAGES]
        return self._generate(text, grounding, history, language, generator, timings, details)

    def _thresholds(self, text: str) -> tuple[float, float]:
        """Return the (stored answer, passage) thresholds for the script of ``text``."""
        retrieval = self.settings.retrieval
        if has_cjk(text):
            return retrieval.answer_threshold_zh, retrieval.passage_threshold_zh
        return retrieval.answer_threshold, retrieval.passage_threshold

    def _generate(
        self,
        text: str,
        grounding: list[Passage],
        history: list[Message],
        language: str,
        generator: Generator,
        timings: dict[str, float],
        details: dict[str, Any],
    ) -> _Decision:
        messages = build_grounded_messages(question=text, passages=grounding, history=history)
        generation_settings = self.settings.generation
        step = time.perf_counter()
        try:
            generation = generator.generate(
                messages,
                max_new_tokens=generation_settings.max_new_tokens,
                temperature=generation_settings.temperature,
            )
        except GenerationError:
            logger.exception("Generation failed; quoting the best passage instead")
            timings["generation"] = round((time.perf_counter() - step) * 1000, 1)
            return _quote(grounding[0], language, "generation_failed", details)

        timings["generation"] = round((time.perf_counter() - step) * 1000, 1)
        answer = drop_repeated_sentences(generation.text.strip())
        details["generation"] = {
            "model": generation.model,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        }
        if not answer:
            return _quote(grounding[0], language, "empty_generation", details)

        similarity = self._grounding_similarity(answer, grounding)
        details["grounding_similarity"] = round(similarity, 4)
        if similarity < self.settings.retrieval.grounding_min_similarity:
            return _quote(grounding[0], language, "ungrounded_generation", details)
        citations = [_cite(passage) for passage in grounding]
        return _Decision(answer, ReplyPath.GENERATED, "grounded_generation", citations, details)

    def _grounding_similarity(self, answer: str, grounding: list[Passage]) -> float:
        """Return the highest cosine similarity between the answer and a passage."""
        vectors = self.retriever.embedder.embed([answer, *(p.text for p in grounding)])
        return float(np.max(vectors[1:] @ vectors[0]))

    def _store_reply(
        self,
        conversation_id: int,
        customer_message: Message,
        decision: _Decision,
        language: str,
        served: ServedModel,
        timings: dict[str, float],
        understanding: Understanding | None = None,
    ) -> Reply:
        explanation = {
            "path": decision.path.value,
            "reason": decision.reason,
            "language": language,
            "models": {
                "embedding": self.retriever.embedder.name,
                "generator": served.generator.model_name,
                "dialog_version": served.version or "base",
                "intent_version": understanding.versions.get("intent") if understanding else None,
                "ner_version": understanding.versions.get("ner") if understanding else None,
            },
            **decision.details,
        }
        if understanding is not None:
            explanation["nlu"] = understanding.to_explanation()
        with self.session_factory.begin() as session:
            conversation = repository.get_conversation(session, conversation_id)
            draft = Reply(
                conversation_id=conversation_id,
                customer_message_id=customer_message.id,
                message_id=0,
                text=decision.text,
                path=decision.path,
                language=language,
                citations=decision.citations,
                timings_ms=timings,
                explanation=explanation,
            )
            bot_message = repository.add_message(
                session,
                conversation=conversation,
                role=Role.BOT,
                text=decision.text,
                meta=draft.to_metadata(),
            )
        return Reply(**{**draft.__dict__, "message_id": bot_message.id})


def _understanding_columns(understanding: Understanding | None) -> dict[str, Any]:
    """Return the customer message's NLU columns; empty when NLU did not run."""
    if understanding is None:
        return {}
    return {
        "intent": understanding.intent.intent,
        "intent_confidence": round(understanding.intent.confidence, 4),
        "out_of_scope": understanding.intent.out_of_scope,
        "entities": [entity.to_dict() for entity in understanding.entities],
    }


def _quote(passage: Passage, language: str, reason: str, details: dict[str, Any]) -> _Decision:
    excerpt = _shorten(passage.text, QUOTE_MAX_CHARS)
    text = translate("reply.passage_quote", language, title=passage.title, excerpt=excerpt)
    return _Decision(text, ReplyPath.RETRIEVED, reason, [_cite(passage)], details)


def drop_repeated_sentences(text: str) -> str:
    """Remove sentences that repeat an earlier sentence of the same answer.

    Small dialog models under greedy decoding often loop on one sentence; the first
    occurrence is kept. Sentences end at ``.``, ``!``, ``?`` or their CJK forms.
    """
    kept: list[str] = []
    seen: set[str] = set()
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0)
        key = " ".join(sentence.lower().split())
        if key in seen:
            continue
        seen.add(key)
        kept.append(sentence)
    return "".join(kept).strip()


def _cite(passage: Passage) -> Citation:
    return Citation(
        chunk_id=passage.chunk_id,
        document_id=passage.document_id,
        title=passage.title,
        source=passage.source,
        kind=str(passage.kind.value),
        score=round(float(passage.score), 4),
    )


def _describe_passage(passage: Passage) -> dict[str, Any]:
    return {
        "chunk_id": passage.chunk_id,
        "title": passage.title,
        "kind": str(passage.kind.value),
        "score": round(float(passage.score), 4),
        "dense_score": round(float(passage.dense_score), 4),
        "lexical_score": round(float(passage.lexical_score), 4),
    }


def _shorten(text: str, max_chars: int) -> str:
    # Drop Markdown heading marks: the quote already names the document.
    text = " ".join(line.lstrip("#").strip() for line in text.splitlines())
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1].rstrip() + "…"
