"""Split knowledge documents and past conversations into chunks for search.

Example:
    >>> chunker = TextChunker(max_chars=1200, overlap_chars=150)
    >>> drafts = chunker.split(load_document(Path("help/billing.md")))
    >>> drafts[0].title
    'Billing > Refunds'
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from retrieval.language import count_cjk, detect_language
from retrieval.loaders import FENCE_PATTERN, HEADING_PATTERN, SourceDocument
from storage.models import DocumentKind, Message, Role

logger = logging.getLogger(__name__)

# Length limit of Chunk.title.
MAX_TITLE_CHARS = 1024
TITLE_SEPARATOR = " > "

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Sentence ends: Latin punctuation before whitespace, Chinese punctuation anywhere (Chinese
# puts no space after it), closing quotes included, and line breaks.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|[。！？；]+[”’」』）]*|\n")
_SENTENCE_START = re.compile(r"(?:(?<=[.!?]\s)|(?<=[。！？；\n]))\S")
_WORD_START = re.compile(r"(?<=\s)\S")
_LATIN_CHAR = re.compile("[A-Za-z0-9]")
_CJK_CHAR = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it is stored; the fields match storage.models.Chunk."""

    position: int
    title: str
    text: str
    language: str
    question: str | None = None


def chunk_embedding_text(*, title: str, question: str | None, text: str) -> str:
    """Return the text that is embedded for a chunk.

    Question-answer chunks are embedded by their question alone, because customers ask
    questions: on StackFAQ (bench/bench_retrieval.py), embedding the thread titles put
    the right thread first for 94.5% of paraphrased questions, and embedding titles with
    their answers for 90.0%. Passages are embedded with their title, so a chunk from the
    middle of a section keeps the section's subject.
    """
    if question:
        return question
    return f"{title}\n{text}"


def chunk_lexical_text(
    *, title: str, question: str | None, text: str, kind: DocumentKind | None = None
) -> str:
    """Return the text that lexical search indexes for a chunk.

    FAQ entries are indexed with their answer too, so a query can match words that only
    the curated answer uses. On StackFAQ this gave the hybrid at lexical weight 0.1 a
    top-1 accuracy of 95.0%, against 94.5% with the questions alone (a one-off
    comparison on the data of bench/bench_retrieval.py). Past agent answers are indexed
    by the customer question alone: their replies name things from other turns (a
    reply about one attraction lists nearby ones), and matching those words would make
    an unrelated question look answered.
    """
    if question and kind is DocumentKind.DIALOG:
        return question
    if question:
        return f"{question}\n{text}"
    return f"{title}\n{text}"


class TextChunker:
    """Split documents into chunks of at most ``max_chars`` characters.

    Markdown and HTML documents are first cut at headings (outside code fences), so no
    chunk spans two sections. A section longer than ``max_chars`` is packed from whole
    paragraphs, then whole sentences (ending in . ! ? or 。！？；), then words, and only
    a run without any break is cut mid-word. Each chunk after the first of a section
    starts with up to ``overlap_chars`` characters from the end of the previous one, cut
    at a sentence or word start. Each chunk is titled by the document title and its
    nearest heading.

    FAQ entries become one chunk each, whatever their length: the question goes to
    ``question``, the answer to ``text``, and the title is the entry's title or else
    its question.

    Args:
        max_chars: Maximum characters per chunk, at least 50.
        overlap_chars: Characters repeated from the previous chunk, at least 0 and at
            most half of ``max_chars``. 0 disables overlap.

    Raises:
        ValueError: If the sizes are out of range.
    """

    def __init__(self, *, max_chars: int = 1200, overlap_chars: int = 150) -> None:
        if max_chars < 50:
            raise ValueError(f"max_chars must be at least 50, got {max_chars}")
        if not 0 <= overlap_chars <= max_chars // 2:
            raise ValueError(
                f"overlap_chars must be between 0 and half of max_chars ({max_chars // 2}), "
                f"got {overlap_chars}: lower overlap_chars or raise max_chars"
            )

        self.max_chars = max_chars
        self.overlap_chars = overlap_chars

    def split(self, document: SourceDocument) -> list[ChunkDraft]:
        """Split ``document`` into chunks numbered from 0 in reading order.

        Returns:
            The chunks; empty only if the document has no text.
        """
        if document.faq_entries:
            return [
                ChunkDraft(
                    position=position,
                    title=_truncate(entry.title or entry.question),
                    question=entry.question,
                    text=entry.answer,
                    language=detect_language(f"{entry.question}\n{entry.answer}"),
                )
                for position, entry in enumerate(document.faq_entries)
            ]

        has_headings = document.kind in (DocumentKind.MARKDOWN, DocumentKind.HTML)
        sections = split_sections(document.text) if has_headings else [(None, document.text)]
        drafts: list[ChunkDraft] = []
        for heading, body in sections:
            title = _section_title(document.title, heading)
            for text in self.split_text(body):
                drafts.append(
                    ChunkDraft(
                        position=len(drafts),
                        title=title,
                        text=text,
                        language=detect_language(text),
                    )
                )
        return drafts

    def split_text(self, text: str) -> list[str]:
        """Split one section of text into stripped chunks of at most ``max_chars``."""
        pieces = _split_pieces(text, 0, len(text), self.max_chars)
        if not pieces:
            return []

        chunks = []
        start, end = pieces[0]
        for piece_start, piece_end in pieces[1:]:
            if piece_end - start <= self.max_chars:
                end = piece_end
                continue
            chunks.append(text[start:end].strip())
            start = self._find_overlap_start(text, start, end, piece_start, piece_end)
            end = piece_end
        chunks.append(text[start:end].strip())
        return chunks

    def _find_overlap_start(
        self, text: str, chunk_start: int, chunk_end: int, piece_start: int, piece_end: int
    ) -> int:
        # The next chunk must still fit: it runs from the returned offset to piece_end.
        lowest = max(chunk_end - self.overlap_chars, piece_end - self.max_chars, chunk_start + 1)
        if self.overlap_chars == 0 or lowest >= chunk_end:
            return piece_start
        for pattern in (_SENTENCE_START, _WORD_START, _CJK_CHAR):
            match = pattern.search(text, lowest, chunk_end)
            if match:
                return match.start()
        return piece_start


def build_answer_pairs(
    messages: Iterable[Message], *, min_answer_words: int = 6
) -> list[tuple[str, str]]:
    """Pair each customer turn with the agent turn that follows it.

    Consecutive messages of one role are merged with line breaks; bot and system
    messages are ignored. Answers that end in a question mark are dropped: a clarifying
    question ("At what time will you be dining?") only makes sense inside its own
    conversation, so it is no answer to return to another customer.

    Returns:
        (question, answer) pairs whose answer has at least ``min_answer_words`` words,
        counting two CJK characters as one word, and does not end in a question.
    """
    turns: list[tuple[Role, str]] = []
    for message in messages:
        text = message.text.strip()
        if message.role not in (Role.CUSTOMER, Role.AGENT) or not text:
            continue
        if turns and turns[-1][0] == message.role:
            turns[-1] = (message.role, f"{turns[-1][1]}\n{text}")
        else:
            turns.append((message.role, text))

    return [
        (question, answer)
        for (asker, question), (replier, answer) in zip(turns, turns[1:], strict=False)
        if asker == Role.CUSTOMER
        and replier == Role.AGENT
        and count_words(answer) >= min_answer_words
        and not answer.rstrip().endswith(("?", "？"))
    ]


def count_words(text: str) -> float:
    """Count the words of ``text`` that contain a Latin letter or digit, plus CJK characters / 2."""
    latin_words = sum(1 for word in text.split() if _LATIN_CHAR.search(word))
    return latin_words + count_cjk(text) / 2


def draft_answer_chunks(title: str, pairs: list[tuple[str, str]]) -> list[ChunkDraft]:
    """Return one question-answer chunk per (question, answer) pair, all titled ``title``."""
    return [
        ChunkDraft(
            position=position,
            title=_truncate(title),
            question=question,
            text=answer,
            language=detect_language(question),
        )
        for position, (question, answer) in enumerate(pairs)
    ]


def split_sections(text: str) -> list[tuple[str | None, str]]:
    """Cut Markdown text at ATX headings outside code fences.

    A heading with no text of its own before the next heading is kept at the start of
    the next section, so no section is a bare heading.

    Returns:
        (nearest heading or None, section text including its heading line) pairs.
    """
    raw_sections: list[tuple[str | None, str]] = []
    heading, section_start, offset, in_fence = None, 0, 0, False
    for line in text.splitlines(keepends=True):
        if FENCE_PATTERN.match(line):
            in_fence = not in_fence
        match = None if in_fence else HEADING_PATTERN.match(line.rstrip("\r\n"))
        if match:
            raw_sections.append((heading, text[section_start:offset]))
            heading, section_start = match.group(2).strip(), offset
        offset += len(line)
    raw_sections.append((heading, text[section_start:]))

    sections: list[tuple[str | None, str]] = []
    pending = ""
    for section_heading, body in raw_sections:
        if _is_heading_only(body):
            pending += body
        elif body.strip():
            sections.append((section_heading, pending + body))
            pending = ""
    if pending.strip():
        sections.append((raw_sections[-1][0], pending))
    return sections


def _is_heading_only(body: str) -> bool:
    lines = [line for line in body.splitlines() if line.strip()]
    return len(lines) == 1 and HEADING_PATTERN.match(lines[0]) is not None


def _section_title(document_title: str, heading: str | None) -> str:
    if heading is None or heading == document_title:
        return _truncate(document_title)
    return _truncate(f"{document_title}{TITLE_SEPARATOR}{heading}")


def _truncate(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _split_pieces(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Return (start, end) offsets of pieces of at most ``limit`` characters.

    Pieces are paragraphs, or the sentences or word runs of a longer paragraph.
    """
    pieces = []
    for paragraph in _spans_between(text, start, end, _PARAGRAPH_BREAK):
        if paragraph[1] - paragraph[0] <= limit:
            pieces.append(paragraph)
            continue
        for sentence in _spans_between(text, *paragraph, _SENTENCE_END, keep_separator=True):
            if sentence[1] - sentence[0] <= limit:
                pieces.append(sentence)
            else:
                pieces.extend(_split_words(text, *sentence, limit))
    return pieces


def _spans_between(
    text: str, start: int, end: int, separator: re.Pattern[str], *, keep_separator: bool = False
) -> list[tuple[int, int]]:
    """Return the non-blank spans between separator matches, trimmed of whitespace."""
    spans = []
    span_start = start
    for match in separator.finditer(text, start, end):
        span_end = match.end() if keep_separator else match.start()
        spans.append(_strip_span(text, span_start, span_end))
        span_start = match.end()
    spans.append(_strip_span(text, span_start, end))
    return [(s, e) for s, e in spans if e > s]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_words(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut a span into pieces of at most ``limit``, at the last space when there is one."""
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        if cut <= start:
            cut = start + limit
        pieces.append(_strip_span(text, start, cut))
        start = _strip_span(text, cut, end)[0]
    pieces.append((start, end))
    return [(s, e) for s, e in pieces if e > s]
