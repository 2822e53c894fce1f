from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from finetune.nlu_data.errors import DataFormatError, DataNotFoundError
from finetune.nlu_data.public import read_public_tagging_dataset
from finetune.nlu_data.tagging_readers import (
    SpanSentenceCollector,
    read_tagging_file,
    sentence_from_spans,
)
from nlu.schemes import spans_from_bio, validate_tags
from nlu.types import TaggedSentence

FIXTURES = Path(__file__).parent / "fixtures" / "nlu"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _entities(sentence: TaggedSentence) -> list[tuple[str, str]]:
    """Return (type, surface text) of each entity, read back through the offsets."""
    return [
        (entity_type, sentence.text[sentence.offsets[first][0] : sentence.offsets[end - 1][1]])
        for first, end, entity_type in spans_from_bio(sentence.tags)
    ]


def _assert_offsets_match(sentence: TaggedSentence) -> None:
    for word, (start, end) in zip(sentence.words, sentence.offsets, strict=True):
        assert sentence.text[start:end] == word, sentence.source


def test_read_conll_fixture():
    sentences = read_tagging_file(FIXTURES / "entities.conll")

    assert len(sentences) == 2
    first = sentences[0]
    assert first.words == ["Anna", "Smith", "lives", "in", "New", "York", "."]
    assert first.tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O"]
    assert first.text == "Anna Smith lives in New York ."
    assert first.source == f"{FIXTURES / 'entities.conll'}:3"
    assert _entities(sentences[1]) == [("ORG", "Acme")]
    _assert_offsets_match(first)


def test_read_conll_iob1_converted(tmp_path):
    path = _write(tmp_path / "iob1.conll", "Anna I-PER\nBob B-PER\nsang O\n\nin O\nParis I-LOC\n")

    sentences = read_tagging_file(path)

    assert sentences[0].tags == ["B-PER", "B-PER", "O"]
    assert sentences[1].tags == ["O", "B-LOC"]


def test_read_chars_fixture():
    sentences = read_tagging_file(FIXTURES / "chars.txt")

    first, second = sentences
    assert first.text == "我要听tfboys的歌"
    assert first.words == ["我", "要", "听", "t", "f", "b", "o", "y", "s", "的", "歌"]
    assert _entities(first) == [("singer_name", "tfboys"), ("song_type", "歌")]
    assert second.text == "放one note"
    assert second.words == ["放", "o", "n", "e", "n", "o", "t", "e"]
    assert _entities(second) == [("song_name", "one note")]
    assert second.source == f"{FIXTURES / 'chars.txt'}:13"
    for sentence in sentences:
        _assert_offsets_match(sentence)
        validate_tags(sentence.tags, "bio")


def test_read_chars_given_scheme_matches_auto():
    assert read_tagging_file(FIXTURES / "chars.txt", fmt="chars", scheme="bioes") == (
        read_tagging_file(FIXTURES / "chars.txt")
    )


def test_read_seq_fixture():
    sentences = read_tagging_file(FIXTURES / "seq")

    english, chinese = sentences
    assert english.text == "book a table for two at noon"
    assert _entities(english) == [("party_size", "two"), ("time", "noon")]
    assert english.source == f"{FIXTURES / 'seq' / 'seq.in'}:1"
    assert chinese.words == list("帮我订明天的酒店")
    assert chinese.text == "帮 我 订 明 天 的 酒 店"
    assert _entities(chinese) == [("date", "明 天")]
    assert read_tagging_file(FIXTURES / "seq" / "seq.in") == sentences


def test_read_span_jsonl_fixture():
    sentences = read_tagging_file(FIXTURES / "entities.jsonl")

    english, chinese, empty = sentences
    assert english.words[5:9] == ["by", "5", "p.m", "."]
    assert _entities(english) == [
        ("person", "Anna Smith"),
        ("time", "5 p.m."),
        ("date", "tomorrow"),
    ]
    assert chinese.words[9:13] == ["G", "1", "0", "2"]
    assert _entities(chinese) == [("date", "明天"), ("city", "上海"), ("train_number", "G102")]
    assert empty.tags == ["O", "O", "O"]
    for sentence in sentences:
        _assert_offsets_match(sentence)


def test_read_span_jsonl_language_option(tmp_path):
    path = _write(
        tmp_path / "mixed.jsonl",
        '{"text": "放tfboys的歌", "entities": [{"start": 1, "end": 7, "type": "singer"}]}\n',
    )

    (auto,) = read_tagging_file(path)
    (english,) = read_tagging_file(path, language="en")

    assert auto.words == list("放tfboys的歌")
    assert _entities(auto) == [("singer", "tfboys")]
    assert english.words == ["放", "tfboys", "的", "歌"]
    assert english.tags == ["O", "B-singer", "O", "O"]


@pytest.mark.parametrize(
    ("name", "content", "line", "expected"),
    [
        ("empty.conll", "", None, "contains no sentences"),
        ("docstart.conll", "-DOCSTART- O\n\n\n", None, "contains no sentences"),
        ("notag.conll", "Anna B-PER\nSmith\n", 2, "has a word but no tag"),
        ("prefix.conll", "Anna B-PER\n\nBob X-PER\n", 3, "prefix 'X'"),
        ("underscore.conll", "Anna B_PER\n", 1, "use a hyphen, such as B-PER"),
        ("notype.conll", "Anna B-PER\nSmith I-\n", 2, "no valid type after I-"),
        ("mixed.conll", "Anna B-PER\nSmith E-PER\n\nParis U-LOC\n", 4, "mix E-/S- prefixes"),
        ("notag.txt", "我 O\n要\n", 2, "has a character but no tag"),
        ("bad.jsonl", '{"text": "hi", "entities": []}\n{"text": "hi",\n', 2, "invalid JSON"),
        ("notext.jsonl", '{"entities": []}\n', 1, 'with a "text" string'),
        ("noentities.jsonl", '{"text": "hi"}\n', 1, '"entities" is missing'),
        ("blank.jsonl", '{"text": "  ", "entities": []}\n', 1, "the text is empty"),
        (
            "badentity.jsonl",
            '{"text": "hi Anna", "entities": [{"start": "3", "end": 7, "type": "PER"}]}\n',
            1,
            "entity 1 is not an object with integer",
        ),
        (
            "range.jsonl",
            '{"text": "hi Anna", "entities": [{"start": 3, "end": 9, "type": "PER"}]}\n',
            1,
            "outside the text of 7 characters",
        ),
        (
            "inside.jsonl",
            '{"text": "call Annabel", "entities": [{"start": 5, "end": 9, "type": "PER"}]}\n',
            1,
            r"'Anna' does not start and end on word boundaries; the words it touches run "
            r"from 5 to 12 \('Annabel'\)",
        ),
        (
            "overlap.jsonl",
            '{"text": "New York City", "entities": [{"start": 0, "end": 8, "type": "LOC"}, '
            '{"start": 4, "end": 13, "type": "CITY"}]}\n',
            1,
            "overlaps another entity",
        ),
    ],
)
def test_read_tagging_file_rejects(tmp_path, name, content, line, expected):
    path = _write(tmp_path / name, content)

    with pytest.raises(DataFormatError, match=expected) as caught:
        read_tagging_file(path)

    assert caught.value.path == str(path)
    assert caught.value.line == line
    location = str(path) if line is None else f"{path}:{line}"
    assert str(caught.value).startswith(f"{location}: ")


@pytest.mark.parametrize(
    ("content", "scheme", "line", "expected"),
    [
        ("Anna B-PER\nSmith E-PER\n", "bio", 2, "'E-PER' does not fit the bio scheme"),
        ("in O\nParis I-LOC\n", "bio", 2, "every entity starts with B-"),
        ("Paris B-LOC\nis O\n", "bioes", 1, "an entity of one word is S-LOC"),
        ("Anna I-PER\n\nParis B-LOC\n", "iob1", 3, "B- only separates"),
    ],
)
def test_read_tagging_file_given_scheme_rejects(tmp_path, content, scheme, line, expected):
    path = _write(tmp_path / "tags.conll", content)

    with pytest.raises(DataFormatError, match=expected) as caught:
        read_tagging_file(path, scheme=scheme)

    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_read_seq_word_tag_mismatch(tmp_path):
    _write(tmp_path / "seq.in", "book a table\nplay jazz now\n")
    _write(tmp_path / "seq.out", "O O O\nO B-genre\n")

    with pytest.raises(
        DataFormatError, match="has 2 tags but line 2 of .*seq.in has 3 words"
    ) as caught:
        read_tagging_file(tmp_path)

    assert caught.value.path == str(tmp_path / "seq.out")
    assert caught.value.line == 2


def test_read_seq_line_count_mismatch(tmp_path):
    _write(tmp_path / "seq.in", "book a table\n")
    _write(tmp_path / "seq.out", "O O O\nO B-genre\n")

    with pytest.raises(DataFormatError, match="no matching line") as caught:
        read_tagging_file(tmp_path / "seq.in")

    assert caught.value.path == str(tmp_path / "seq.out")
    assert caught.value.line == 2


def test_read_seq_missing_tags_file(tmp_path):
    _write(tmp_path / "seq.in", "book a table\n")

    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_tagging_file(tmp_path)


def test_read_tagging_file_not_utf8(tmp_path):
    path = tmp_path / "gbk.txt"
    path.write_bytes("我 O\n".encode() + "歌 O\n".encode("gb18030"))

    with pytest.raises(DataFormatError, match="not valid UTF-8") as caught:
        read_tagging_file(path, fmt="chars")

    assert caught.value.line == 2


def test_read_span_jsonl_extend_alignment(tmp_path, caplog):
    path = _write(
        tmp_path / "spans.jsonl",
        '{"text": "call Annabel", "entities": [{"start": 5, "end": 9, "type": "PER"}]}\n'
        '{"text": "New York City", "entities": [{"start": 0, "end": 8, "type": "LOC"}, '
        '{"start": 4, "end": 13, "type": "CITY"}]}\n',
    )

    with caplog.at_level(logging.WARNING):
        first, second = read_tagging_file(path, span_alignment="extend")

    assert first.tags == ["O", "B-PER"]
    assert second.tags == ["B-LOC", "I-LOC", "O"]
    assert "extended_to_word_boundaries=1 dropped=1" in caplog.text


def test_read_tagging_file_unknown_options(tmp_path):
    path = _write(tmp_path / "tags.conll", "Anna B-PER\n")

    with pytest.raises(ValueError, match="unknown tagging file format 'csv'"):
        read_tagging_file(path, fmt="csv")
    with pytest.raises(ValueError, match="unknown tag scheme 'bioul'"):
        read_tagging_file(path, scheme="bioul")
    with pytest.raises(ValueError, match="unknown span_alignment 'loose'"):
        read_tagging_file(path, span_alignment="loose")


def test_sentence_from_spans_duplicate_spans_kept_once():
    result = sentence_from_spans(
        "table at 7 pm",
        [(9, 13, "time"), (9, 13, "time")],
        source="x",
        language="en",
        alignment="strict",
    )

    assert result.sentence.tags == ["O", "O", "B-time", "I-time"]
    assert (result.extended, result.dropped) == (0, 0)


def test_span_sentence_collector_counts(caplog):
    collector = SpanSentenceCollector("demo", "en")

    collector.add("Book a table at 7pm", [(16, 17, "time")], "a#1")
    collector.add("only today", [(5, 10, "date"), (0, 10, "date_period"), (20, 30, "x")], "a#2")
    collector.add("   ", [], "a#3")
    with caplog.at_level(logging.INFO):
        sentences = collector.finish()

    assert sentences[0].tags == ["O", "O", "O", "O", "B-time"]
    assert sentences[1].tags == ["B-date_period", "I-date_period"]
    assert len(sentences) == 2
    assert "extended_to_word_boundaries=1 dropped=2 of spans=4" in caplog.text
    assert "skipped_empty_texts=1" in caplog.text


def _write_sgd_file(path: Path, dialogs: list[dict]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        json.dump(dialogs, stream)


def _sgd_dialog(dialogue_id: str, utterance: str, slots: list[dict]) -> dict:
    return {
        "dialogue_id": dialogue_id,
        "turns": [
            {"speaker": "USER", "utterance": utterance, "frames": [{"slots": slots}]},
            {"speaker": "SYSTEM", "utterance": "Done.", "frames": [{"slots": []}]},
        ],
    }


def test_public_sgd_limits_on_small_files(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / "sgd" / split).mkdir(parents=True)
        _write_sgd_file(
            tmp_path / "sgd" / split / "dialogues_001.json.gz",
            [
                _sgd_dialog(
                    "1_00000",
                    "Find a table in Paris",
                    [{"slot": "city", "start": 16, "exclusive_end": 21}],
                ),
                _sgd_dialog("1_00001", "Two people please", []),
            ],
        )
    (tmp_path / "sgd" / "train" / "dialogues_002.json.gz").write_bytes(b"not gzip")

    limited = read_public_tagging_dataset("sgd", tmp_path, max_dialogs=1)
    with pytest.raises(DataFormatError, match="invalid JSON or gzip data"):
        read_public_tagging_dataset("sgd", tmp_path)

    assert [len(part) for _, part in limited.items()] == [1, 1, 1]
    assert limited.train[0].tags == ["O", "O", "O", "O", "B-city"]
    assert limited.train[0].source.endswith("dialogues_001.json.gz#1_00000/0")


def test_public_tagging_unknown_name_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown tagging dataset 'banking77'; known: snips, atis"):
        read_public_tagging_dataset("banking77", tmp_path)
    with pytest.raises(DataNotFoundError, match="chinese_nlu_cais/ of the datasets folder"):
        read_public_tagging_dataset("cais", tmp_path)
    with pytest.raises(ValueError, match="max_dialogs must be at least 1"):
        read_public_tagging_dataset("sgd", tmp_path, max_dialogs=0)


def _check_public_sentences(splits) -> None:
    for _, sentences in splits.items():
        for sentence in sentences:
            _assert_offsets_match(sentence)
            validate_tags(sentence.tags, "bio")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "counts", "slot_types"),
    [
        ("snips", (13084, 700, 700), 39),
        ("atis", (4478, 500, 893), 79),
        ("cais", (7995, 994, 1012), 24),
    ],
)
def test_public_tagging_counts(shared_data_dir, name, counts, slot_types):
    splits = read_public_tagging_dataset(name, shared_data_dir)

    assert (len(splits.train), len(splits.validation), len(splits.test)) == counts
    train_types = {tag[2:] for sentence in splits.train for tag in sentence.tags if tag != "O"}
    assert len(train_types) == slot_types
    _check_public_sentences(splits)


@pytest.mark.slow
def test_public_cais_spaces_and_latin_runs(shared_data_dir):
    splits = read_public_tagging_dataset("cais", shared_data_dir)

    texts = {sentence.text for _, part in splits.items() for sentence in part}
    assert "我要听tfboys的歌。" in texts
    spaced = [sentence for sentence in splits.train if " " in sentence.text]
    assert len(spaced) > 50
    assert all(" " not in word for sentence in spaced for word in sentence.words)


@pytest.mark.slow
def test_public_nlu_plus_plus_tagging(shared_data_dir):
    splits = read_public_tagging_dataset("nlu_plus_plus", shared_data_dir)

    assert (len(splits.train), len(splits.validation), len(splits.test)) == (2467, 311, 302)
    assert sum(len(part) for _, part in splits.items()) == 2071 + 1009
    _check_public_sentences(splits)


@pytest.mark.slow
def test_public_smp_tagging_matches_intent_split(shared_data_dir):
    from finetune.nlu_data.public import read_public_intent_dataset

    tagging = read_public_tagging_dataset("smp", shared_data_dir)
    intents = read_public_intent_dataset("smp", shared_data_dir)

    assert [sentence.text for sentence in tagging.test] == [item.text for item in intents.test]
    entities = sum(len(spans_from_bio(sentence.tags)) for sentence in tagging.train)
    assert entities > 5000
    _check_public_sentences(tagging)


@pytest.mark.slow
def test_public_sgd_first_files(shared_data_dir):
    splits = read_public_tagging_dataset("sgd", shared_data_dir, max_files=1, max_dialogs=50)

    assert all(0 < len(part) < 50 * 20 for _, part in splits.items())
    assert sum(len(spans_from_bio(sentence.tags)) for sentence in splits.train) > 20
    assert splits.train[0].source.endswith("dialogues_001.json.gz#1_00000/0")
    _check_public_sentences(splits)
