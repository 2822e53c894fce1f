from __future__ import annotations

import pytest

from nlu.schemes import (
    InvalidTagError,
    bio_from_spans,
    detect_scheme,
    normalize_scheme,
    parse_tag,
    spans_from_bio,
    to_bio,
    validate_tags,
)


def test_parse_tag_valid():
    assert parse_tag("O") == ("O", "")
    assert parse_tag("B-PER") == ("B", "PER")
    assert parse_tag("I-fromloc.city_name") == ("I", "fromloc.city_name")
    assert parse_tag("S-date-time") == ("S", "date-time")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("X-PER", "prefix 'X'"),
        ("B_PER", "use a hyphen, such as B-PER"),
        ("I-", "no valid type after I-"),
        ("B", "has no type"),
        ("o", "upper-case O"),
        ("PER", "is not valid"),
        ("B-New York", "without spaces"),
        ("", "is not valid"),
    ],
)
def test_parse_tag_invalid(tag, expected):
    with pytest.raises(InvalidTagError, match=expected) as caught:
        parse_tag(tag)

    assert caught.value.tag == tag


def test_normalize_scheme_aliases():
    assert normalize_scheme("IOB2") == "bio"
    assert normalize_scheme("iobes") == "bioes"
    assert normalize_scheme(" BILOU ") == "bilou"
    with pytest.raises(ValueError, match="unknown tag scheme 'bieo'"):
        normalize_scheme("bieo")


@pytest.mark.parametrize(
    ("sequences", "expected"),
    [
        ([["B-PER", "I-PER", "O"], ["O", "B-LOC"]], "bio"),
        ([["O", "O"], []], "bio"),
        ([["I-PER", "I-PER", "O", "I-LOC"], ["I-PER", "B-PER"]], "iob1"),
        ([["B-PER", "I-PER", "B-LOC", "I-PER"]], "iob1"),
        ([["B-PER", "E-PER", "O"], ["B-LOC", "I-LOC"]], "bioes"),
        ([["S-PER"]], "bioes"),
        ([["B-PER", "L-PER", "U-LOC"]], "bilou"),
    ],
)
def test_detect_scheme(sequences, expected):
    assert detect_scheme(sequences) == expected


def test_detect_scheme_mixed_last_prefixes():
    with pytest.raises(InvalidTagError, match="mix E-/S- prefixes") as caught:
        detect_scheme([["B-PER", "E-PER"], ["O", "U-LOC"]])

    assert caught.value.sentence_index == 1
    assert caught.value.word_index == 1


def test_detect_scheme_reports_malformed_tag_position():
    with pytest.raises(InvalidTagError) as caught:
        detect_scheme([["O"], ["O", "B-PER", "X-PER"]])

    assert caught.value.sentence_index == 1
    assert caught.value.word_index == 2


@pytest.mark.parametrize(
    ("tags", "scheme"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "bio"),
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "iob1"),
        (["B-PER", "I-PER", "E-PER", "O", "S-LOC"], "bioes"),
        (["B-PER", "L-PER", "U-LOC"], "bilou"),
        (["O", "O"], "bio"),
    ],
)
def test_validate_tags_accepts_valid(tags, scheme):
    validate_tags(tags, scheme)


@pytest.mark.parametrize(
    ("tags", "scheme", "word_index", "expected"),
    [
        (["O", "E-PER"], "bio", 1, "does not fit the bio scheme"),
        (["O", "I-PER"], "bio", 1, "every entity starts with B-"),
        (["B-PER", "I-LOC"], "bio", 1, "change it to B-LOC"),
        (["O", "B-PER"], "iob1", 1, "B- only separates"),
        (["B-PER", "O"], "bioes", 0, "S-PER in the bioes scheme"),
        (["O", "E-PER"], "bioes", 1, "does not continue"),
        (["B-PER", "E-LOC"], "bioes", 0, "is not followed by I-PER or E-PER"),
        (["B-PER", "L-PER", "S-LOC"], "bilou", 2, "does not fit the bilou scheme"),
        (["O", "B_PER"], "bio", 1, "use a hyphen"),
    ],
)
def test_validate_tags_rejects(tags, scheme, word_index, expected):
    with pytest.raises(InvalidTagError, match=expected) as caught:
        validate_tags(tags, scheme)

    assert caught.value.word_index == word_index


@pytest.mark.parametrize(
    ("tags", "scheme", "expected"),
    [
        (
            ["I-PER", "I-PER", "B-PER", "O", "I-LOC"],
            "iob1",
            ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
        ),
        (
            ["B-PER", "I-PER", "E-PER", "S-LOC", "O"],
            "bioes",
            ["B-PER", "I-PER", "I-PER", "B-LOC", "O"],
        ),
        (["B-PER", "L-PER", "U-PER", "U-PER"], "bilou", ["B-PER", "I-PER", "B-PER", "B-PER"]),
        (["O", "I-PER", "B-LOC", "I-PER"], "bio", ["O", "B-PER", "B-LOC", "B-PER"]),
        (["E-PER", "O"], "bioes", ["B-PER", "O"]),
        ([], "bio", []),
    ],
)
def test_to_bio(tags, scheme, expected):
    assert to_bio(tags, scheme) == expected


def test_to_bio_is_idempotent_on_bio():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]

    assert to_bio(to_bio(tags, "bio"), "bio") == tags


def test_spans_from_bio():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "B-PER", "I-LOC"]

    assert spans_from_bio(tags) == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 5, "LOC"),
        (5, 6, "PER"),
        (6, 7, "LOC"),
    ]


def test_bio_from_spans_round_trip():
    spans = [(0, 2, "PER"), (3, 4, "LOC"), (4, 6, "LOC")]

    tags = bio_from_spans(7, spans)

    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]
    assert spans_from_bio(tags) == spans


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(0, 2, "PER"), (1, 3, "LOC")], "overlaps another span"),
        ([(2, 2, "PER")], "outside the 4 words"),
        ([(3, 5, "PER")], "outside the 4 words"),
    ],
)
def test_bio_from_spans_rejects(spans, expected):
    with pytest.raises(ValueError, match=expected):
        bio_from_spans(4, spans)
