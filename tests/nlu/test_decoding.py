from __future__ import annotations

import numpy as np
import pytest

from nlu.decoding import TagSpan, bio_viterbi, decode_entities, repair_bio, tag_spans
from nlu.words import Word, split_words


def _decode(text: str, tags: list[str], language: str = "en", **kwargs):
    return decode_entities(text, split_words(text, language), tags, version="v7", **kwargs)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["O", "B-a", "I-a", "O"], [TagSpan("a", 1, 3)]),
        (["I-a", "I-a", "O"], [TagSpan("a", 0, 2)]),
        (["O", "I-a", "O", "I-a"], [TagSpan("a", 1, 2), TagSpan("a", 3, 4)]),
        (["B-a", "I-b", "I-b"], [TagSpan("a", 0, 1), TagSpan("b", 1, 3)]),
        (["B-a", "B-a", "I-a"], [TagSpan("a", 0, 1), TagSpan("a", 1, 3)]),
        (["B-fromloc.city_name", "I-fromloc.city_name"], [TagSpan("fromloc.city_name", 0, 2)]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_tag_spans_rules(tags, expected):
    assert tag_spans(tags) == expected


def test_repair_bio_starts_every_entity_with_b():
    tags = ["I-a", "I-a", "I-b", "O", "I-c", "B-c", "I-c"]

    assert repair_bio(tags) == ["B-a", "I-a", "B-b", "O", "B-c", "B-c", "I-c"]


def test_decode_entities_orphan_inside_tag():
    entities = _decode("fly from new york to boston", ["O", "O", "I-from", "I-from", "O", "I-to"])

    assert [(e.type, e.text) for e in entities] == [("from", "new york"), ("to", "boston")]


def test_decode_entities_type_change_starts_entity():
    entities = _decode("new york boston", ["B-from", "I-from", "I-to"])

    assert [(e.type, e.text, e.start, e.end) for e in entities] == [
        ("from", "new york", 0, 8),
        ("to", "boston", 9, 15),
    ]


def test_decode_entities_text_covers_gaps():
    text = "ship to  Rue de  l'Église, Paris!"
    tags = ["O", "O", "B-street", "I-street", "I-street", "O", "B-city", "O"]

    entities = _decode(text, tags)

    assert [e.text for e in entities] == ["Rue de  l'Église", "Paris"]
    assert all(text[e.start : e.end] == e.text for e in entities)
    assert entities[0].value == "Rue de  l'Église"


def test_decode_entities_chinese_offsets():
    text = "我要听 tfboys的歌"
    tags = ["O", "O", "O", *["B-singer"] + ["I-singer"] * 5, "O", "O"]

    entities = _decode(text, tags, language="zh")

    assert len(entities) == 1
    assert (entities[0].start, entities[0].end, entities[0].text) == (4, 10, "tfboys")


def test_decode_entities_confidence_and_source():
    entities = _decode("call adele now", ["O", "B-artist", "O"], confidences=[0.9, 0.6, 0.99])
    two_words = _decode("new york", ["B-city", "I-city"], confidences=[0.5, 0.7])

    assert entities[0].source == "model:v7"
    assert entities[0].confidence == pytest.approx(0.6)
    assert two_words[0].confidence == pytest.approx(0.6)


def test_decode_entities_without_confidences():
    entities = _decode("call adele", ["O", "B-artist"])

    assert entities[0].confidence is None


@pytest.mark.parametrize("bad_tag", ["E-x", "S-x", "B-", "X", "b-x"])
def test_decode_entities_rejects_non_bio_tag(bad_tag):
    with pytest.raises(ValueError, match="tag"):
        _decode("a b", ["O", bad_tag])


def test_decode_entities_rejects_length_mismatch():
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        _decode("a b", ["O"])
    with pytest.raises(ValueError, match="1 confidences"):
        _decode("a b", ["O", "O"], confidences=[1.0])


def test_decode_entities_rejects_offsets_outside_text():
    with pytest.raises(ValueError, match="outside the text"):
        decode_entities("ab", [Word("abc", 0, 3)], ["B-x"], version="v")


VITERBI_LABELS = ["O", "B-a", "I-a", "B-b", "I-b"]


def test_bio_viterbi_avoids_orphan_inside():
    # Per-word argmax gives I-a, I-a, O: an orphan start.
    probabilities = np.array(
        [
            [0.1, 0.3, 0.5, 0.05, 0.05],
            [0.1, 0.1, 0.7, 0.05, 0.05],
            [0.5, 0.1, 0.1, 0.1, 0.2],
        ]
    )

    path = bio_viterbi(probabilities, VITERBI_LABELS)

    assert [VITERBI_LABELS[index] for index in path] == ["B-a", "I-a", "O"]


def test_bio_viterbi_keeps_type_of_entity():
    # I-b is the best second tag, but only I-a may follow B-a, and B-b scores 0.
    probabilities = np.array([[0.1, 0.8, 0.0, 0.05, 0.05], [0.1, 0.0, 0.3, 0.0, 0.6]])

    path = bio_viterbi(probabilities, VITERBI_LABELS)

    assert [VITERBI_LABELS[index] for index in path] == ["B-a", "I-a"]


def test_bio_viterbi_matches_argmax_on_valid_sequence():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(5), size=6)
    probabilities[:, 2] = 0.0
    probabilities[:, 4] = 0.0

    path = bio_viterbi(probabilities, VITERBI_LABELS)

    assert path == list(probabilities.argmax(axis=1))


def test_bio_viterbi_empty_and_bad_shape():
    assert bio_viterbi(np.zeros((0, 5)), VITERBI_LABELS) == []
    with pytest.raises(ValueError, match="do not match 5 labels"):
        bio_viterbi(np.zeros((2, 3)), VITERBI_LABELS)
