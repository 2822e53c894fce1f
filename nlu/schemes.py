"""Tag schemes of token-classification data: parsing, detection, validation, conversion to BIO.

Every tag is ``O`` (outside any entity) or ``<prefix>-<type>``, for example ``B-singer_name``.
The type is everything after the first ``-`` and may contain further ``-`` or ``.``
(ATIS uses ``B-fromloc.city_name``). The schemes differ in their prefixes:

- ``iob1``: ``I-`` on every word of an entity, except that an entity directly following
  another entity of the same type starts with ``B-``.
- ``bio`` (also called IOB2): ``B-`` on the first word of every entity, ``I-`` on the rest.
- ``bioes`` (also called IOBES): as ``bio``, but the last word of an entity of several words
  gets ``E-`` and an entity of one word gets ``S-``.
- ``bilou``: ``bioes`` with ``L-`` in place of ``E-`` and ``U-`` in place of ``S-``.

The module has no dependencies beyond the standard library, so serving code can use it.

Example:
    >>> detect_scheme([["B-singer", "E-singer", "O", "S-song"]])
    'bioes'
    >>> to_bio(["B-singer", "E-singer", "O", "S-song"], "bioes")
    ['B-singer', 'I-singer', 'O', 'B-song']
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

OUTSIDE = "O"
SCHEMES = ("iob1", "bio", "bioes", "bilou")
SCHEME_ALIASES = {"iob2": "bio", "iobes": "bioes"}
PREFIXES = {
    "iob1": frozenset("BI"),
    "bio": frozenset("BI"),
    "bioes": frozenset("BIES"),
    "bilou": frozenset("BILU"),
}
_ALL_PREFIXES = frozenset("BIESLU")
# Prefixes that end an entity (E-, L-) and prefixes of one-word entities (S-, U-).
_LAST = frozenset("EL")
_SINGLE = frozenset("SU")


class InvalidTagError(ValueError):
    """A tag is malformed or does not fit the tag scheme of its sentence.

    Attributes:
        tag: The offending tag.
        sentence_index: 0-based index of the sentence in the collection, or ``None`` when
            a single sentence was checked.
        word_index: 0-based index of the word in its sentence, or ``None`` when unknown.
        reason: What is wrong and how to fix it, without position information.
    """

    def __init__(
        self,
        tag: str,
        reason: str,
        *,
        word_index: int | None = None,
        sentence_index: int | None = None,
    ) -> None:
        self.tag = tag
        self.reason = reason
        self.word_index = word_index
        self.sentence_index = sentence_index
        super().__init__(reason)


def normalize_scheme(name: str) -> str:
    """Return the canonical scheme name for ``name`` (case-insensitive, aliases resolved).

    Raises:
        ValueError: If ``name`` is not a known scheme or alias.
    """
    key = name.strip().lower()
    key = SCHEME_ALIASES.get(key, key)
    if key not in SCHEMES:
        known = ", ".join([*SCHEMES, *SCHEME_ALIASES])
        raise ValueError(f"unknown tag scheme {name!r}; use one of: {known}")
    return key


def parse_tag(tag: str) -> tuple[str, str]:
    """Split a tag into its prefix and entity type.

    Returns:
        ``("O", "")`` for ``O``, otherwise ``(prefix, type)``, such as ``("B", "PER")``.

    Raises:
        InvalidTagError: If the tag is neither ``O`` nor one of ``B``, ``I``, ``E``, ``S``,
            ``L``, ``U`` followed by ``-`` and a non-empty type without whitespace.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, separator, entity_type = tag.partition("-")
    if not separator:
        raise InvalidTagError(tag, _describe_tag_without_hyphen(tag))
    if prefix not in _ALL_PREFIXES:
        raise InvalidTagError(
            tag,
            f"tag {tag!r} has the prefix {prefix!r}; a tag is O or one of B-, I-, E-, S-, "
            f"L-, U- followed by a type, such as B-{entity_type or 'PER'}",
        )
    if not entity_type or entity_type != entity_type.strip() or any(c.isspace() for c in tag):
        raise InvalidTagError(
            tag,
            f"tag {tag!r} has no valid type after {prefix}-; write {prefix}-<type> with a "
            f"type without spaces, such as {prefix}-PER",
        )
    return prefix, entity_type


def _describe_tag_without_hyphen(tag: str) -> str:
    if tag.upper() == OUTSIDE:
        return f"tag {tag!r} is not valid; write the outside tag as an upper-case O"
    if len(tag) > 2 and tag[0] in _ALL_PREFIXES and not tag[1].isalnum():
        return (
            f"tag {tag!r} separates prefix and type with {tag[1]!r}; use a hyphen, "
            f"such as {tag[0]}-{tag[2:]}"
        )
    if tag[:1] in _ALL_PREFIXES and len(tag) == 1:
        return f"tag {tag!r} has no type; write {tag}-<type>, such as {tag}-PER"
    return (
        f"tag {tag!r} is not valid; a tag is O or a prefix (B, I, E, S, L, U), a hyphen "
        "and a type, such as B-PER"
    )


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """Detect the tag scheme of a collection of tag sequences.

    The rules, applied to the whole collection:

    1. Any ``E-`` or ``S-`` tag means ``bioes``, any ``L-`` or ``U-`` tag means ``bilou``.
    2. Otherwise, an ``I-`` tag that starts an entity (first word, after ``O`` or after a
       tag of another type) means ``iob1``.
    3. Otherwise the result is ``bio``. That includes collections of ``O`` tags only and
       collections whose entities all start with ``B-``.

    Rule 2 also classifies BIO data with stray ``I-`` tags as ``iob1``. That is harmless:
    :func:`to_bio` turns an entity-initial ``I-`` into ``B-`` under either scheme, so both
    readings give the same BIO tags.

    Args:
        sequences: The tags of each sentence.

    Returns:
        One of ``iob1``, ``bio``, ``bioes`` or ``bilou``.

    Raises:
        InvalidTagError: If a tag is malformed, or if the collection mixes ``E-``/``S-``
            with ``L-``/``U-`` prefixes. ``sentence_index`` and ``word_index`` locate it.
    """
    has_bioes_tag: tuple[int, int, str] | None = None
    has_bilou_tag: tuple[int, int, str] | None = None
    starts_with_inside = False

    for sentence_index, tags in enumerate(sequences):
        previous_prefix, previous_type = OUTSIDE, ""
        for word_index, tag in enumerate(tags):
            prefix, entity_type = _parse_at(tag, word_index, sentence_index)
            if prefix in ("E", "S") and has_bioes_tag is None:
                has_bioes_tag = (sentence_index, word_index, tag)
            if prefix in ("L", "U") and has_bilou_tag is None:
                has_bilou_tag = (sentence_index, word_index, tag)
            if prefix == "I" and (previous_prefix == OUTSIDE or previous_type != entity_type):
                starts_with_inside = True
            previous_prefix, previous_type = prefix, entity_type

    if has_bioes_tag and has_bilou_tag:
        sentence_index, word_index, tag = has_bilou_tag
        raise InvalidTagError(
            tag,
            f"the tags mix E-/S- prefixes (bioes, first {has_bioes_tag[2]!r}) with L-/U- "
            f"prefixes (bilou, first {tag!r}); use one of the two schemes",
            word_index=word_index,
            sentence_index=sentence_index,
        )
    if has_bioes_tag:
        return "bioes"
    if has_bilou_tag:
        return "bilou"
    return "iob1" if starts_with_inside else "bio"


def validate_tags(tags: Sequence[str], scheme: str) -> None:
    """Check that every tag of one sentence is well formed and follows ``scheme`` strictly.

    Strict means the following. In ``bio`` every entity starts with ``B-``. In ``iob1`` a
    ``B-`` only follows a tag of the same type. In ``bioes`` and ``bilou`` an entity of
    several words runs ``B-``, ``I-``..., ``E-``/``L-`` with one type, and a one-word
    entity is ``S-``/``U-``.

    Raises:
        InvalidTagError: For the first tag that is malformed or breaks the scheme, with
            ``word_index`` set.
        ValueError: If ``scheme`` is not a known scheme.
    """
    scheme = normalize_scheme(scheme)
    parsed = [_parse_at(tag, index, None) for index, tag in enumerate(tags)]

    for index, (prefix, entity_type) in enumerate(parsed):
        if prefix != OUTSIDE and prefix not in PREFIXES[scheme]:
            raise InvalidTagError(
                tags[index],
                f"tag {tags[index]!r} does not fit the {scheme} scheme, which allows only O "
                f"and the prefixes {', '.join(sorted(PREFIXES[scheme]))}; pass the scheme the "
                "data uses, or 'auto' to detect it",
                word_index=index,
            )
        previous = parsed[index - 1] if index > 0 else (OUTSIDE, "")
        following = parsed[index + 1] if index + 1 < len(parsed) else (OUTSIDE, "")
        problem = _sequence_problem(scheme, previous, (prefix, entity_type), following)
        if problem:
            raise InvalidTagError(tags[index], f"tag {tags[index]!r} {problem}", word_index=index)


def _sequence_problem(
    scheme: str, previous: tuple[str, str], current: tuple[str, str], following: tuple[str, str]
) -> str | None:
    """Return why ``current`` breaks ``scheme`` between its neighbours, or ``None``."""
    prefix, entity_type = current
    continues = previous[0] in ("B", "I") and previous[1] == entity_type
    if scheme == "bio" and prefix == "I" and not continues:
        return (
            f"starts an entity, but in the bio scheme every entity starts with B-; change it "
            f"to B-{entity_type}, or pass scheme 'iob1' or 'auto' to accept it"
        )
    if scheme == "iob1" and prefix == "B" and previous[1] != entity_type:
        return (
            f"does not follow an entity of type {entity_type!r}, but in the iob1 scheme B- "
            "only separates two adjacent entities of one type; pass scheme 'bio' or 'auto'"
        )
    if scheme in ("bioes", "bilou"):
        last = "E" if scheme == "bioes" else "L"
        single = "S" if scheme == "bioes" else "U"
        is_continued = following[0] in ("I", last) and following[1] == entity_type
        if prefix in ("I", last) and not continues:
            return f"does not continue a B-{entity_type} or I-{entity_type} tag"
        if prefix in ("B", "I") and not is_continued:
            return (
                f"is not followed by I-{entity_type} or {last}-{entity_type}; an entity of "
                f"one word is {single}-{entity_type} in the {scheme} scheme"
            )
    return None


def to_bio(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert one sentence's tags from ``scheme`` to BIO.

    ``S-``/``U-`` become ``B-`` and ``E-``/``L-`` become ``I-``. Then every ``I-`` that
    starts an entity (first word, after ``O`` or after another type) becomes ``B-``. That
    step is the IOB1 conversion and also repairs BIO and BIOES data whose entities start
    with ``I-`` or ``E-``. The conversion does not check the scheme, so call
    :func:`validate_tags` first where strict input is required.

    Raises:
        InvalidTagError: If a tag is malformed, with ``word_index`` set.
        ValueError: If ``scheme`` is not a known scheme.
    """
    normalize_scheme(scheme)
    converted: list[str] = []
    previous_prefix, previous_type = OUTSIDE, ""

    for index, tag in enumerate(tags):
        prefix, entity_type = _parse_at(tag, index, None)
        if prefix in _SINGLE:
            prefix = "B"
        elif prefix in _LAST:
            prefix = "I"
        if prefix == "I" and (previous_prefix == OUTSIDE or previous_type != entity_type):
            prefix = "B"
        converted.append(OUTSIDE if prefix == OUTSIDE else f"{prefix}-{entity_type}")
        previous_prefix, previous_type = prefix, entity_type

    return converted


def spans_from_bio(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Return the entities of a BIO tag sequence as ``(first word, end word, type)``.

    ``end word`` is exclusive. An ``I-`` tag that starts an entity opens a new one, so
    the result matches :func:`to_bio` followed by a strict reading.

    Raises:
        InvalidTagError: If a tag is malformed, with ``word_index`` set.
    """
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    current_type = ""

    for index, tag in enumerate(tags):
        prefix, entity_type = _parse_at(tag, index, None)
        continues = prefix == "I" and start is not None and entity_type == current_type
        if continues:
            continue
        if start is not None:
            spans.append((start, index, current_type))
            start = None
        if prefix != OUTSIDE:
            start, current_type = index, entity_type

    if start is not None:
        spans.append((start, len(tags), current_type))
    return spans


def bio_from_spans(word_count: int, spans: Iterable[tuple[int, int, str]]) -> list[str]:
    """Build BIO tags for ``word_count`` words from ``(first word, end word, type)`` spans.

    Raises:
        ValueError: If a span is empty, leaves the sentence or overlaps another span.
    """
    tags = [OUTSIDE] * word_count

    for start, end, entity_type in sorted(spans):
        if not 0 <= start < end <= word_count:
            raise ValueError(
                f"span ({start}, {end}, {entity_type!r}) is outside the {word_count} words "
                "of the sentence or empty"
            )
        if any(tag != OUTSIDE for tag in tags[start:end]):
            raise ValueError(
                f"span ({start}, {end}, {entity_type!r}) overlaps another span; "
                "BIO tags cannot express overlapping entities"
            )
        tags[start] = f"B-{entity_type}"
        for index in range(start + 1, end):
            tags[index] = f"I-{entity_type}"

    return tags


def _parse_at(tag: str, word_index: int, sentence_index: int | None) -> tuple[str, str]:
    """Parse ``tag``, adding its position to the error."""
    try:
        return parse_tag(tag)
    except InvalidTagError as error:
        error.word_index = word_index
        error.sentence_index = sentence_index
        raise
