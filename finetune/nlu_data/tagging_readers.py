"""Read token-classification (entity and slot tagging) data into BIO-tagged sentences.

Formats (every file UTF-8, a byte order mark allowed):

- ``conll``: one word a line, the word in the first column and its tag in the last,
  columns separated by spaces or tabs, a blank line between sentences. ``-DOCSTART-``
  lines are skipped. The sentence text is the words joined by single spaces.
- ``chars``: one character and its tag a line (``我 O``), a blank line between sentences,
  as in CAIS. The text is the characters joined without separators, so a Latin run
  written ``t``, ``f``, ``b``, ``o``, ``y``, ``s`` on six lines becomes ``tfboys``. A line
  that starts with a space followed by only a tag stands for a space in the text. That
  space keeps its place in ``text`` but is not a word, and its tag is dropped.
- ``seq``: ``seq.in`` with the space-separated words of one sentence a line and
  ``seq.out`` with their tags on the same line, as in SNIPS and ATIS.
- ``jsonl``: one ``{"text": ..., "entities": [{"start": 0, "end": 5, "type": "PER"}]}``
  object a line with character offsets (``end`` exclusive). The text is split into words
  by :func:`nlu.words.split_words`, the function serving uses, and the spans become BIO
  tags.

Tags of the first three formats may use any scheme of :mod:`nlu.schemes`. Every sentence
is returned in BIO.

Example:
    >>> sentences = read_tagging_file(Path("data/snips/train"))  # the folder of seq.in
    >>> sentences[0].words[:3], sentences[0].tags[:3]
    (['listen', 'to', 'westbam'], ['O', 'O', 'B-artist'])
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import NamedTuple

from finetune.nlu_data.errors import (
    DataFormatError,
    iter_aligned_lines,
    iter_text_lines,
)
from nlu.schemes import (
    InvalidTagError,
    bio_from_spans,
    detect_scheme,
    normalize_scheme,
    to_bio,
    validate_tags,
)
from nlu.types import TaggedSentence
from nlu.words import split_words

logger = logging.getLogger(__name__)

TAGGING_FORMATS = ("conll", "chars", "seq", "jsonl")
SPAN_ALIGNMENTS = ("strict", "extend")
DOCSTART = "-DOCSTART-"
# Han and kana. A span file's text that contains one is split as Chinese (one word per
# character) when the language is "auto", and a column file whose first column is single
# characters including one of them is read as "chars".
_HAN_KANA_PATTERN = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"
)
_SNIFF_LINES = 200


@dataclass
class TaggingSplits:
    """A dataset's tagged sentences per split; ``validation`` and ``test`` may be empty.

    Attributes:
        train: Sentences to train on.
        validation: Sentences for model selection.
        test: Sentences for the final evaluation.
        name: Dataset name, such as ``snips``.
        language: Language of the sentences, ``en`` or ``zh``.
    """

    train: list[TaggedSentence]
    validation: list[TaggedSentence]
    test: list[TaggedSentence]
    name: str
    language: str

    def items(self) -> list[tuple[str, list[TaggedSentence]]]:
        """Return ``(split name, sentences)`` for train, validation and test in that order."""
        return [("train", self.train), ("validation", self.validation), ("test", self.test)]


class SpanConversion(NamedTuple):
    """A sentence built from character spans, with what alignment had to change.

    Attributes:
        sentence: The sentence with BIO tags.
        extended: Number of spans widened to word boundaries (``extend`` alignment only).
        dropped: Number of spans left out because they were empty, outside the text, on
            spaces only or overlapping another span (``extend`` alignment only).
    """

    sentence: TaggedSentence
    extended: int
    dropped: int


@dataclass
class _RawSentence:
    """Tokens and tags as written in a file, before scheme conversion."""

    tokens: list[str]
    tags: list[str]
    lines: list[int]


def read_tagging_file(
    path: str | Path,
    fmt: str = "auto",
    scheme: str = "auto",
    *,
    span_alignment: str = "strict",
    language: str = "auto",
) -> list[TaggedSentence]:
    """Read a tagged file into BIO sentences.

    Args:
        path: The file; for ``seq`` the ``seq.in`` file or its folder.
        fmt: ``conll``, ``chars``, ``seq``, ``jsonl`` or ``auto``. ``auto`` picks ``seq``
            for a folder, ``seq.in`` or ``seq.out``, ``jsonl`` for ``.jsonl``/``.ndjson``,
            and otherwise reads the first 200 lines: ``chars`` when every first column is
            one character and one of them is Chinese (or a line stands for a space),
            ``conll`` otherwise.
        scheme: The tag scheme of the file (``iob1``, ``bio``, ``bioes``, ``bilou`` or an
            alias, see :mod:`nlu.schemes`). A given scheme is checked strictly on every
            sentence. ``auto`` detects it over the whole file and accepts what converts.
            Ignored for ``jsonl``.
        span_alignment: For ``jsonl``: ``strict`` rejects a span that does not start and
            end on word boundaries or overlaps another span. ``extend`` widens such a
            span to the words it touches, drops overlapping spans, and logs a warning with
            the counts.
        language: For ``jsonl``: the language tag that :func:`nlu.words.split_words`
            splits each text by (``zh`` gives one word per character). ``auto`` uses
            ``zh`` for a text that contains a Han or kana character and ``en`` otherwise.

    Returns:
        The sentences in file order, with BIO tags.

    Raises:
        DataNotFoundError: If the file (or ``seq.in``/``seq.out``) does not exist.
        DataFormatError: If the file has no sentence or is not UTF-8, or a line lacks a
            tag. Also if ``seq.in`` and ``seq.out`` disagree on the number of lines or
            words, a tag is malformed or breaks the given scheme, or a JSON line or span
            is invalid. The error names the file and line.
        ValueError: If ``fmt``, ``scheme`` or ``span_alignment`` is unknown.
    """
    path = Path(path)
    if span_alignment not in SPAN_ALIGNMENTS:
        raise ValueError(
            f"unknown span_alignment {span_alignment!r}; use one of: {', '.join(SPAN_ALIGNMENTS)}"
        )
    if scheme != "auto":
        scheme = normalize_scheme(scheme)
    fmt = _resolve_tagging_format(path, fmt)
    logger.info("Reading tagging file path=%s format=%s scheme=%s", path, fmt, scheme)

    if fmt == "jsonl":
        sentences = _read_span_sentences(path, span_alignment, language)
    elif fmt == "seq":
        folder = path if path.is_dir() else path.parent
        raw = list(_iter_seq_sentences(folder))
        sentences = _convert_sentences(raw, folder / "seq.in", folder / "seq.out", scheme, " ")
    else:
        raw = list(_iter_column_sentences(path, is_chars=fmt == "chars"))
        sentences = _convert_sentences(raw, path, path, scheme, "" if fmt == "chars" else " ")

    if not sentences:
        raise DataFormatError(path, None, "the file contains no sentences. Add tagged sentences")
    logger.info(
        "Read tagging file path=%s sentences=%d words=%d entities=%d",
        path,
        len(sentences),
        sum(len(sentence.words) for sentence in sentences),
        sum(tag.startswith("B-") for sentence in sentences for tag in sentence.tags),
    )
    return sentences


def _resolve_tagging_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in TAGGING_FORMATS:
            raise ValueError(
                f"unknown tagging file format {fmt!r}; use one of: auto, "
                f"{', '.join(TAGGING_FORMATS)}"
            )
        return fmt
    if path.is_dir() or path.name in ("seq.in", "seq.out"):
        return "seq"
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return "jsonl"
    return "chars" if _looks_like_chars(path) else "conll"


def _looks_like_chars(path: Path) -> bool:
    lines = (line for _, line in iter_text_lines(path) if line.strip())
    first_columns = []
    for line in islice(lines, _SNIFF_LINES):
        fields = line.split()
        if line[0].isspace() and len(fields) == 1:
            return True
        first_columns.append(fields[0])
    return all(len(token) == 1 for token in first_columns) and any(
        _HAN_KANA_PATTERN.search(token) for token in first_columns
    )


def _iter_column_sentences(path: Path, *, is_chars: bool) -> Iterator[_RawSentence]:
    current = _RawSentence([], [], [])

    for number, line in iter_text_lines(path):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if current.tokens:
                yield current
                current = _RawSentence([], [], [])
            continue
        if is_chars and line[0].isspace() and len(fields) == 1:
            token, tag = " ", fields[0]
        elif len(fields) < 2:
            what = "character" if is_chars else "word"
            raise DataFormatError(
                path,
                number,
                f"the line has a {what} but no tag. Write the {what} and its tag separated "
                f"by a space, such as '{fields[0]} O'",
            )
        else:
            token, tag = fields[0], fields[-1]
        current.tokens.append(token)
        current.tags.append(tag)
        current.lines.append(number)

    if current.tokens:
        yield current


def _iter_seq_sentences(folder: Path) -> Iterator[_RawSentence]:
    seq_in, seq_out = folder / "seq.in", folder / "seq.out"
    for number, words_line, tags_line in iter_aligned_lines(seq_in, seq_out):
        words, tags = words_line.split(), tags_line.split()
        if not words and not tags:
            continue
        if len(words) != len(tags):
            raise DataFormatError(
                seq_out,
                number,
                f"the line has {len(tags)} tags but line {number} of {seq_in} has "
                f"{len(words)} words. Give each word exactly one tag",
            )
        yield _RawSentence(words, tags, [number] * len(words))


def _convert_sentences(
    raw: Sequence[_RawSentence], source_path: Path, tag_path: Path, scheme: str, separator: str
) -> list[TaggedSentence]:
    """Check the tags against the scheme, convert them to BIO and build the sentences."""
    if scheme == "auto":
        try:
            scheme = detect_scheme(sentence.tags for sentence in raw)
        except InvalidTagError as error:
            sentence = raw[error.sentence_index or 0]
            raise DataFormatError(
                tag_path, sentence.lines[error.word_index or 0], error.reason
            ) from error
        logger.info("Detected tag scheme path=%s scheme=%s", tag_path, scheme)
    else:
        for sentence in raw:
            try:
                validate_tags(sentence.tags, scheme)
            except InvalidTagError as error:
                raise DataFormatError(
                    tag_path, sentence.lines[error.word_index or 0], error.reason
                ) from error

    return [_build_sentence(sentence, source_path, scheme, separator) for sentence in raw]


def _build_sentence(raw: _RawSentence, path: Path, scheme: str, separator: str) -> TaggedSentence:
    bio_tags = to_bio(raw.tags, scheme)
    text = ""
    words: list[str] = []
    tags: list[str] = []
    offsets: list[tuple[int, int]] = []

    for token, tag in zip(raw.tokens, bio_tags, strict=True):
        if token == " ":
            text += " " if words else ""
            continue
        if words and separator:
            text += separator
        offsets.append((len(text), len(text) + len(token)))
        text += token
        words.append(token)
        tags.append(tag)

    # Dropping a space can leave an entity starting with I-; "bio" conversion repairs it.
    return TaggedSentence(
        words=words,
        tags=to_bio(tags, "bio"),
        text=text.rstrip(" "),
        offsets=offsets,
        source=f"{path}:{raw.lines[0]}",
    )


def _read_span_sentences(path: Path, span_alignment: str, language: str) -> list[TaggedSentence]:
    sentences: list[TaggedSentence] = []
    extended = dropped = 0

    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        text, spans = _parse_span_record(path, number, line)
        try:
            result = sentence_from_spans(
                text,
                spans,
                source=f"{path}:{number}",
                language=_resolve_language(text, language),
                alignment=span_alignment,
            )
        except ValueError as error:
            raise DataFormatError(path, number, str(error)) from error
        sentences.append(result.sentence)
        extended += result.extended
        dropped += result.dropped

    if extended or dropped:
        logger.warning(
            "Adjusted entity spans path=%s extended_to_word_boundaries=%d dropped=%d; fix "
            "the offsets in the file to keep the spans as written",
            path,
            extended,
            dropped,
        )
    return sentences


def _parse_span_record(
    path: Path, number: int, line: str
) -> tuple[str, list[tuple[int, int, str]]]:
    example = '{"text": "call Anna", "entities": [{"start": 5, "end": 9, "type": "PER"}]}'
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataFormatError(
            path,
            number,
            f"invalid JSON ({error.msg} at column {error.colno}). Write one object a line, "
            f"such as {example}",
        ) from error
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise DataFormatError(
            path, number, f'the line is not an object with a "text" string, such as {example}'
        )
    if not record["text"].strip():
        raise DataFormatError(path, number, "the text is empty. Fill it in or delete the line")
    entities = record.get("entities")
    if not isinstance(entities, list):
        raise DataFormatError(
            path,
            number,
            f'"entities" is missing or not a list. Give a list of spans (empty for none), '
            f"such as {example}",
        )

    spans = []
    for index, entity in enumerate(entities, start=1):
        if not (
            isinstance(entity, dict)
            and _is_int(entity.get("start"))
            and _is_int(entity.get("end"))
            and isinstance(entity.get("type"), str)
            and entity["type"].strip()
            and not any(character.isspace() for character in entity["type"])
        ):
            raise DataFormatError(
                path,
                number,
                f"entity {index} is not an object with integer 'start' and 'end' and a "
                f"'type' without spaces: {json.dumps(entity, ensure_ascii=False)}",
            )
        spans.append((entity["start"], entity["end"], entity["type"]))
    return record["text"], spans


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve_language(text: str, language: str) -> str:
    if language != "auto":
        return language
    return "zh" if _HAN_KANA_PATTERN.search(text) else "en"


def sentence_from_spans(
    text: str,
    spans: Sequence[tuple[int, int, str]],
    *,
    source: str,
    language: str,
    alignment: str = "strict",
) -> SpanConversion:
    """Split ``text`` into words and tag them in BIO from character spans.

    Args:
        text: The sentence.
        spans: ``(start, end, type)`` character spans, ``end`` exclusive.
        source: Stored as the sentence's ``source``.
        language: Language tag for :func:`nlu.words.split_words`, such as ``en`` or ``zh``.
        alignment: ``strict`` raises for a span that is empty, outside the text, off word
            boundaries or overlapping another. ``extend`` widens an off-boundary span to
            the words it touches, and drops spans that are empty, outside the text, touch
            no word, or overlap a span that starts earlier (or is longer at the same start).

    Returns:
        The sentence with the number of spans extended and dropped.

    Raises:
        ValueError: In ``strict`` alignment, for the first span that breaks a rule, with
            the span's text and the nearest word boundaries.
    """
    words = [(word.text, word.start, word.end) for word in split_words(text, language)]
    word_ranges: list[tuple[int, int, str]] = []
    extended = dropped = 0

    for start, end, entity_type in spans:
        problem = _span_problem(text, start, end)
        covered = [] if problem else _covered_words(words, start, end)
        if not problem and not covered:
            problem = "covers no word, only spaces"
        if problem:
            if alignment == "strict":
                raise ValueError(f"entity ({start}, {end}, {entity_type!r}) {problem}")
            dropped += 1
            continue
        first, last = covered[0], covered[-1]
        if words[first][1] != start or words[last][2] != end:
            if alignment == "strict":
                raise ValueError(
                    _describe_misaligned(text, start, end, entity_type, words[first], words[last])
                )
            extended += 1
        word_ranges.append((first, last + 1, entity_type))

    kept, overlapping = _remove_overlaps(word_ranges)
    if overlapping and alignment == "strict":
        first_word, end_word, entity_type = overlapping[0]
        raise ValueError(
            f"entity {entity_type!r} on words {first_word + 1}-{end_word} "
            "overlaps another entity; BIO tags cannot express overlapping entities, so "
            "remove one of them"
        )

    sentence = TaggedSentence(
        words=[word for word, _, _ in words],
        tags=bio_from_spans(len(words), kept),
        text=text,
        offsets=[(start, end) for _, start, end in words],
        source=source,
    )
    return SpanConversion(sentence, extended, dropped + len(overlapping))


def spans_from_values(
    text: str, slots: Mapping[str, object]
) -> tuple[list[tuple[int, int, str]], int]:
    """Place slot values given without offsets by finding them in ``text``.

    Longer values are placed first, each at its first occurrence that overlaps no value
    placed before, so "山东鲁能" is placed before a "鲁能" of another slot.

    Args:
        text: The sentence.
        slots: Slot name to value, or to a list of values. Values that are not strings
            count as not found.

    Returns:
        The ``(start, end, slot)`` character spans, and the number of values that were not
        found (or were found only inside values placed before).
    """
    values = [
        (slot, value)
        for slot, slot_values in slots.items()
        for value in (slot_values if isinstance(slot_values, list) else [slot_values])
    ]
    spans: list[tuple[int, int, str]] = []
    missing = 0

    for slot, value in sorted(values, key=lambda item: -len(str(item[1]))):
        start = text.find(value) if isinstance(value, str) and value.strip() else -1
        while start != -1 and any(
            start < end and start + len(value) > begin for begin, end, _ in spans
        ):
            start = text.find(value, start + 1)
        if start == -1:
            missing += 1
            continue
        spans.append((start, start + len(value), slot))
    return spans, missing


def _span_problem(text: str, start: int, end: int) -> str | None:
    if not 0 <= start < end <= len(text):
        return (
            f"is empty or outside the text of {len(text)} characters; start must be below "
            "end, and end at most the text length"
        )
    return None


def _covered_words(words: Sequence[tuple[str, int, int]], start: int, end: int) -> list[int]:
    return [
        index
        for index, (_, word_start, word_end) in enumerate(words)
        if word_start < end and word_end > start
    ]


def _describe_misaligned(
    text: str,
    start: int,
    end: int,
    entity_type: str,
    first: tuple[str, int, int],
    last: tuple[str, int, int],
) -> str:
    return (
        f"entity ({start}, {end}, {entity_type!r}) {text[start:end]!r} does not start and end "
        f"on word boundaries; the words it touches run from {first[1]} to {last[2]} "
        f"({text[first[1] : last[2]]!r}). Set start and end to word boundaries, or read the file "
        "with span_alignment='extend'"
    )


def _remove_overlaps(
    word_ranges: Sequence[tuple[int, int, str]],
) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    """Keep ranges that overlap no kept range, earlier start first, then longer first."""
    kept: list[tuple[int, int, str]] = []
    overlapping: list[tuple[int, int, str]] = []

    for word_range in sorted(set(word_ranges), key=lambda item: (item[0], -item[1], item[2])):
        if kept and word_range[0] < kept[-1][1]:
            overlapping.append(word_range)
        else:
            kept.append(word_range)
    return kept, overlapping


class SpanSentenceCollector:
    """Build sentences from character spans with ``extend`` alignment, counting changes.

    Used for public datasets whose spans cannot be fixed at the source: a span that ends
    inside a word is widened to the word, and one that cannot be placed is dropped. The
    counts are logged as one warning by :meth:`finish`.

    Example:
        >>> collector = SpanSentenceCollector("sgd/train", "en")
        >>> collector.add("Book a table at 7pm", [(16, 17, "time")], "dialogues_001.json#1_0/0")
        >>> sentences = collector.finish()  # logs: 1 span extended to word boundaries
    """

    def __init__(self, name: str, language: str) -> None:
        self.name = name
        self.language = language
        self.sentences: list[TaggedSentence] = []
        self.spans = 0
        self.extended = 0
        self.dropped = 0
        self.empty_texts = 0

    def add(self, text: str, spans: Sequence[tuple[int, int, str]], source: str) -> None:
        """Split ``text`` into words, tag it from ``spans`` and keep the sentence.

        A text without words is skipped, and counted in the log line of :meth:`finish`.
        """
        if not text.strip():
            self.empty_texts += 1
            return
        result = sentence_from_spans(
            text, spans, source=source, language=self.language, alignment="extend"
        )
        self.sentences.append(result.sentence)
        self.spans += len(spans)
        self.extended += result.extended
        self.dropped += result.dropped

    def finish(self) -> list[TaggedSentence]:
        """Log the counts and return the sentences in the order they were added."""
        logger.info(
            "Built tagged sentences name=%s sentences=%d spans=%d skipped_empty_texts=%d",
            self.name,
            len(self.sentences),
            self.spans,
            self.empty_texts,
        )
        if self.extended or self.dropped:
            logger.warning(
                "Adjusted entity spans name=%s extended_to_word_boundaries=%d dropped=%d of "
                "spans=%d; the source data has spans inside words or overlapping spans",
                self.name,
                self.extended,
                self.dropped,
                self.spans,
            )
        return self.sentences
