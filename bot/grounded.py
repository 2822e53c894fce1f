"""Answers from the knowledge base: a stored answer, a quoted passage or a grounded generation.

For one customer turn, in order:

1. retrieve FAQ entries and past agent answers, and knowledge passages;
2. a stored answer whose question matches with a score of at least
   ``retrieval.answer_threshold`` (``answer_threshold_zh`` for questions with CJK
   characters) is returned as it is;
3. a short turn whose own retrieval finds nothing relevant is retried together with the
   previous customer turn, so that a follow-up such as "and how much is it?" is read in
   context;
4. when the best passage reaches ``retrieval.passage_threshold`` (``passage_threshold_zh``),
   the dialog model writes an answer grounded in the passages, the conversation's last
   turns and its filled slots. The best passage is quoted instead for languages the model
   does not write well, and when the answer's similarity to the passages is below
   ``retrieval.grounding_min_similarity``;
5. otherwise there is no answer, and the policy decides between fallback and handoff.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.config import Settings
from bot.generation.base import GenerationError, Generator
from bot.i18n import translate
from bot.prompting import build_grounded_messages
from bot.reply import Citation, Decision, ReplyPath
from retrieval.language import has_cjk
from retrieval.retriever import HybridRetriever, Passage
from storage.models import DocumentKind, Message

logger = logging.getLogger(__name__)

# Characters of a passage quoted when the dialog model does not write the language.
QUOTE_MAX_CHARS = 400
# Passages handed to the dialog model for a grounded answer.
MAX_GROUNDING_PASSAGES = 3
# Kinds whose chunk text is an answer that can be returned as it is.
STORED_ANSWER_KINDS = (DocumentKind.FAQ, DocumentKind.DIALOG)
# Kinds that may ground a generated answer or be quoted. Past agent replies are left
# out: they answer one customer's question in its conversation, often naming things
# from earlier turns, so they are only reused when the question itself matches.
PASSAGE_KINDS = (DocumentKind.MARKDOWN, DocumentKind.TEXT, DocumentKind.HTML, DocumentKind.FAQ)
# A sentence with its final punctuation and trailing space, or an unfinished tail.
_SENTENCE = re.compile(r"[^.!?。！？]*[.!?。！？]+\s*|[^.!?。！？]+$")


@dataclass
class _Retrieved:
    query: str
    answers: list[Passage]
    passages: list[Passage]


class GroundedAnswerer:
    """Answers a turn from stored answers and knowledge passages.

    Args:
        retriever: Search over the indexed knowledge base.
        settings: Runtime settings; ``retrieval`` and ``generation`` groups are read.
    """

    def __init__(self, retriever: HybridRetriever, settings: Settings) -> None:
        self.retriever = retriever
        self.settings = settings

    def answer(
        self,
        text: str,
        *,
        language: str,
        history: list[Message],
        slots: dict[str, str],
        generator: Generator,
        timings: dict[str, float],
        details: dict[str, Any],
        allow_generation: bool = True,
    ) -> Decision | None:
        """Answer ``text`` from the knowledge base, or return None when nothing fits.

        Args:
            text: The customer's turn.
            language: Language of the reply.
            history: Earlier messages of the conversation, oldest first.
            slots: Slot values filled so far, given to the dialog model.
            generator: The dialog model to write with.
            timings: Step timings in milliseconds; ``retrieval`` and ``generation`` are added.
            details: Explanation fields; the retrieved passages and thresholds are added.
            allow_generation: False returns only stored answers (the policy hands the
                turn to an agent instead of letting an unsure turn reach the model).
        """
        answer_threshold, passage_threshold = self.thresholds(text)
        details["thresholds"] = {
            **details.get("thresholds", {}),
            "answer": answer_threshold,
            "passage": passage_threshold,
        }

        step = time.perf_counter()
        found = self._retrieve(text)
        if not _reaches(found, answer_threshold, passage_threshold):
            follow_up = self._follow_up_query(text, history)
            if follow_up is not None:
                in_context = self._retrieve(follow_up)
                if _best_score(in_context) > _best_score(found):
                    found = in_context
        timings["retrieval"] = round((time.perf_counter() - step) * 1000, 1)
        details["retrieval_query"] = found.query
        details["stored_answers"] = [describe_passage(answer) for answer in found.answers]
        details["retrieved"] = [describe_passage(passage) for passage in found.passages]

        if found.answers and found.answers[0].score >= answer_threshold:
            best_answer = found.answers[0]
            return Decision(
                best_answer.text,
                ReplyPath.RETRIEVED,
                "stored_answer",
                [cite(best_answer)],
                details,
            )

        best = found.passages[0] if found.passages else None
        if best is None or best.score < passage_threshold or not allow_generation:
            return None

        if language not in self.settings.generation.languages:
            return quote(best, language, "quoted_passage", details)

        grounding = [p for p in found.passages if p.score >= passage_threshold]
        grounding = grounding[:MAX_GROUNDING_PASSAGES]
        return self._generate(
            text, grounding, history, slots, language, generator, timings, details
        )

    def thresholds(self, text: str) -> tuple[float, float]:
        """Return the (stored answer, passage) thresholds for the script of ``text``."""
        retrieval = self.settings.retrieval
        if has_cjk(text):
            return retrieval.answer_threshold_zh, retrieval.passage_threshold_zh
        return retrieval.answer_threshold, retrieval.passage_threshold

    def _retrieve(self, query: str) -> _Retrieved:
        top_k = self.settings.retrieval.top_k
        return _Retrieved(
            query,
            self.retriever.retrieve(query, top_k=top_k, kinds=STORED_ANSWER_KINDS),
            self.retriever.retrieve(query, top_k=top_k, kinds=PASSAGE_KINDS),
        )

    def _follow_up_query(self, text: str, history: list[Message]) -> str | None:
        """Return the previous customer turn joined with ``text`` for a short follow-up."""
        max_words = self.settings.policy.follow_up_max_words
        if max_words == 0 or count_words(text) > max_words:
            return None
        for message in reversed(history):
            if message.role == "customer" and message.text.strip() != text:
                return f"{message.text.strip()} {text}"
        return None

    def _generate(
        self,
        text: str,
        grounding: list[Passage],
        history: list[Message],
        slots: dict[str, str],
        language: str,
        generator: Generator,
        timings: dict[str, float],
        details: dict[str, Any],
    ) -> Decision:
        messages = build_grounded_messages(
            question=text, passages=grounding, history=history, slots=slots
        )
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
            return quote(grounding[0], language, "generation_failed", details)

        timings["generation"] = round((time.perf_counter() - step) * 1000, 1)
        answer = drop_repeated_sentences(generation.text.strip())
        details["generation"] = {
            "model": generation.model,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        }
        if not answer:
            return quote(grounding[0], language, "empty_generation", details)

        similarity = self._grounding_similarity(answer, grounding)
        details["grounding_similarity"] = round(similarity, 4)
        details["thresholds"]["grounding_min_similarity"] = (
            self.settings.retrieval.grounding_min_similarity
        )
        if similarity < self.settings.retrieval.grounding_min_similarity:
            return quote(grounding[0], language, "ungrounded_generation", details)
        citations = [cite(passage) for passage in grounding]
        return Decision(answer, ReplyPath.GENERATED, "grounded_generation", citations, details)

    def _grounding_similarity(self, answer: str, grounding: list[Passage]) -> float:
        """Return the highest cosine similarity between the answer and a passage."""
        vectors = self.retriever.embedder.embed([answer, *(p.text for p in grounding)])
        return float(np.max(vectors[1:] @ vectors[0]))


def count_words(text: str) -> int:
    """Count words, with four CJK characters counted as one word."""
    cjk = sum(1 for char in text if has_cjk(char))
    latin_words = len(re.sub(r"[\u3400-\u9fff\uf900-\ufaff]", " ", text).split())
    return latin_words + (cjk + 3) // 4


def quote(passage: Passage, language: str, reason: str, details: dict[str, Any]) -> Decision:
    """Return a decision that quotes ``passage`` under its title."""
    excerpt = _shorten(passage.text, QUOTE_MAX_CHARS)
    text = translate("reply.passage_quote", language, title=passage.title, excerpt=excerpt)
    return Decision(text, ReplyPath.RETRIEVED, reason, [cite(passage)], details)


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


def cite(passage: Passage) -> Citation:
    """Return the citation of a retrieved passage."""
    return Citation(
        chunk_id=passage.chunk_id,
        document_id=passage.document_id,
        title=passage.title,
        source=passage.source,
        kind=str(passage.kind.value),
        score=round(float(passage.score), 4),
    )


def describe_passage(passage: Passage) -> dict[str, Any]:
    """Return a retrieved passage's id, title and scores for an explanation."""
    return {
        "chunk_id": passage.chunk_id,
        "title": passage.title,
        "kind": str(passage.kind.value),
        "score": round(float(passage.score), 4),
        "dense_score": round(float(passage.dense_score), 4),
        "lexical_score": round(float(passage.lexical_score), 4),
    }


def _reaches(found: _Retrieved, answer_threshold: float, passage_threshold: float) -> bool:
    return bool(
        (found.answers and found.answers[0].score >= answer_threshold)
        or (found.passages and found.passages[0].score >= passage_threshold)
    )


def _best_score(found: _Retrieved) -> float:
    scores = [p.score for p in found.answers[:1] + found.passages[:1]]
    return max(scores, default=0.0)


def _shorten(text: str, max_chars: int) -> str:
    # Drop Markdown heading marks: the quote already names the document.
    text = " ".join(line.lstrip("#").strip() for line in text.splitlines())
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1].rstrip() + "…"
