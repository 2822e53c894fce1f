from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest

from finetune.nlu_data.errors import DataFormatError, DataNotFoundError
from finetune.nlu_data.intent_readers import (
    LabelledUtterance,
    check_intent_labels,
    read_intent_file,
    split_validation,
    stratified_split,
)
from finetune.nlu_data.public import read_public_intent_dataset
from nlu.types import OUT_OF_SCOPE

FIXTURES = Path(__file__).parent / "fixtures" / "nlu"


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _utterances(*pairs: tuple[str, str], file: str = "train.csv") -> list[LabelledUtterance]:
    return [
        LabelledUtterance(text, intent, f"{file}:{line}")
        for line, (text, intent) in enumerate(pairs, start=2)
    ]


def test_read_csv_fixture():
    items = read_intent_file(FIXTURES / "intents.csv")

    assert [item.intent for item in items] == [
        "card_arrival",
        "refund_request",
        "card_arrival",
        "change_pin",
    ]
    assert items[1].text == "I was charged twice, please refund one"
    assert items[2].text == "我的卡还没到"
    assert items[3].text == "How do I reset my PIN?"
    assert items[0].source == f"{FIXTURES / 'intents.csv'}:2"


def test_read_csv_label_and_category_columns(tmp_path):
    label_file = _write(tmp_path / "a.csv", "utterance,label\nhi there,greet\n")
    category_file = _write(tmp_path / "b.csv", "text,category\nhi there,greet\n")

    assert read_intent_file(label_file)[0].intent == "greet"
    assert read_intent_file(category_file)[0].intent == "greet"


def test_read_csv_with_byte_order_mark(tmp_path):
    path = _write(tmp_path / "bom.csv", "\ufefftext,intent\nhello,greet\n")

    items = read_intent_file(path)

    assert items == [LabelledUtterance("hello", "greet", f"{path}:2")]


def test_read_csv_multiline_field_line_numbers(tmp_path):
    path = _write(tmp_path / "multi.csv", 'text,intent\n"two\nlines",greet\n\nbye,farewell\n')

    items = read_intent_file(path)

    assert items[0].text == "two\nlines"
    assert items[0].source.endswith(":2")
    assert items[1].source.endswith(":5")


def test_read_jsonl_fixture():
    items = read_intent_file(FIXTURES / "intents.jsonl")

    assert [item.intent for item in items] == ["card_arrival", "refund_request", OUT_OF_SCOPE]
    assert items[1].text == "我想退款"
    assert items[1].source.endswith("intents.jsonl:3")


def test_read_seq_folder_and_file():
    from_folder = read_intent_file(FIXTURES / "seq")
    from_file = read_intent_file(FIXTURES / "seq" / "seq.in")

    assert from_folder == from_file
    assert [item.intent for item in from_folder] == ["BookRestaurant", "BookHotel"]
    assert from_folder[1].text == "帮 我 订 明 天 的 酒 店"


@pytest.mark.parametrize(
    ("name", "content", "line", "expected"),
    [
        ("empty.csv", "", None, "contains no utterances"),
        ("header.csv", "text,intent\n", None, "contains no utterances"),
        ("blank.jsonl", "\n\n", None, "contains no utterances"),
        (
            "nointent.csv",
            "text,domain\nhi,chat\n",
            1,
            "has no intent column. Name it one of: intent",
        ),
        ("notext.csv", "message,intent\nhi,greet\n", 1, "has no text column. Name it one of: text"),
        ("emptytext.csv", "text,intent\nhi,greet\n  ,greet\n", 3, "the text is empty"),
        ("emptyintent.csv", "text,intent\nhi,greet\nbye,\n", 3, "the intent is empty"),
        ("fields.csv", "text,intent\nhi, there,greet\n", 2, "has 3 fields but the header has 2"),
        ("quote.csv", 'text,intent\nbye,farewell\n"hi,greet\n', 3, "invalid CSV"),
        (
            "bad.jsonl",
            '{"text": "hi", "intent": "greet"}\n{"text": "hi" "intent"}\n',
            2,
            "invalid JSON",
        ),
        ("keys.jsonl", '{"text": "hi", "label": "greet"}\n', 1, '"text" and "intent" keys'),
        ("array.jsonl", '["hi", "greet"]\n', 1, '"text" and "intent" keys'),
        ("number.jsonl", '{"text": "hi", "intent": 3}\n', 1, "the intent is a int, not a string"),
        ("emptytext.jsonl", '{"text": "", "intent": "greet"}\n', 1, "the text is empty"),
    ],
)
def test_read_intent_file_rejects(tmp_path, name, content, line, expected):
    path = _write(tmp_path / name, content)

    with pytest.raises(DataFormatError, match=expected) as caught:
        read_intent_file(path)

    assert caught.value.path == str(path)
    assert caught.value.line == line
    location = str(path) if line is None else f"{path}:{line}"
    assert str(caught.value).startswith(f"{location}: ")


@pytest.mark.parametrize(("text", "encoding"), [("café", "cp1252"), ("我的卡", "gb18030")])
def test_read_intent_file_not_utf8(tmp_path, text, encoding):
    path = _write(tmp_path / "legacy.csv", f"text,intent\nhello,greet\n{text},card\n", encoding)

    with pytest.raises(DataFormatError, match="not valid UTF-8") as caught:
        read_intent_file(path)

    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: ")
    assert "Re-save the file as UTF-8" in str(caught.value)


def test_read_seq_mismatched_line_counts(tmp_path):
    _write(tmp_path / "seq.in", "hello\nbye\nthanks\n")
    _write(tmp_path / "label", "greet\nfarewell\n")

    with pytest.raises(DataFormatError, match="no matching line") as caught:
        read_intent_file(tmp_path)

    assert caught.value.path == str(tmp_path / "seq.in")
    assert caught.value.line == 3


def test_read_seq_skip_empty_text(tmp_path, caplog):
    _write(tmp_path / "seq.in", "hello\n\nbye\n")
    _write(tmp_path / "label", "greet\ngreet\nfarewell\n")

    with pytest.raises(DataFormatError, match="the text is empty"):
        read_intent_file(tmp_path)
    with caplog.at_level(logging.WARNING):
        items = read_intent_file(tmp_path, skip_empty_text=True)

    assert [item.text for item in items] == ["hello", "bye"]
    assert items[1].source.endswith("seq.in:3")
    assert "skipped=1" in caplog.text


def test_read_intent_file_missing(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        read_intent_file(tmp_path / "absent.csv")


def test_read_intent_file_unknown_suffix(tmp_path):
    path = _write(tmp_path / "intents.txt", "hello greet\n")

    with pytest.raises(DataFormatError, match=r"suffix '\.txt'.*csv, jsonl, seq"):
        read_intent_file(path)
    with pytest.raises(ValueError, match="unknown intent file format 'tsv'"):
        read_intent_file(path, fmt="tsv")


def test_check_intent_labels_accepts_oos_in_eval():
    train = _utterances(("hi", "greet"), ("bye", "farewell"))
    evaluation = _utterances(("hello", "greet"), ("sing a song", OUT_OF_SCOPE), file="test.csv")

    check_intent_labels(train, evaluation, "test.csv")


def test_check_intent_labels_unknown_eval_intent():
    train = _utterances(("hi", "greet"), ("bye", "farewell"))
    evaluation = _utterances(
        ("hello", "greet"), ("refund me", "refund"), ("money back", "refund"), file="test.csv"
    )

    with pytest.raises(DataFormatError, match="'refund' is not in the training data") as caught:
        check_intent_labels(train, evaluation, "test.csv")

    assert caught.value.path == "test.csv"
    assert caught.value.line == 3
    assert "2 evaluation utterances have 1 unknown intents" in str(caught.value)


def test_check_intent_labels_single_class():
    train = _utterances(("hi", "greet"), ("hello", "greet"), file="data/train.csv")

    with pytest.raises(DataFormatError, match="only the intent 'greet'") as caught:
        check_intent_labels(train, [], "test.csv")

    assert caught.value.path == "data/train.csv"
    assert caught.value.line is None


def test_check_intent_labels_empty_training():
    with pytest.raises(DataFormatError, match="has no data"):
        check_intent_labels([], [], "test.csv")


def test_split_validation_stratified_and_seeded():
    items = _utterances(
        *[(f"a{i}", "a") for i in range(50)],
        *[(f"b{i}", "b") for i in range(30)],
        *[(f"c{i}", "c") for i in range(19)],
        ("lonely", "d"),
    )

    train, validation = split_validation(items, fraction=0.1, seed=7)
    again_train, again_validation = split_validation(items, fraction=0.1, seed=7)
    _, other_validation = split_validation(items, fraction=0.1, seed=8)

    assert len(validation) == 10
    assert len(train) == 90
    assert Counter(item.intent for item in validation) == {"a": 5, "b": 3, "c": 2}
    assert "lonely" in {item.text for item in train}
    assert (again_train, again_validation) == (train, validation)
    assert other_validation != validation
    assert [item for item in items if item in train] == train


def test_stratified_split_keeps_one_per_label():
    items = [("x", "a"), ("y", "a"), ("z", "b")]

    remaining, held_out = stratified_split(items, fraction=0.5, seed=0, key=lambda item: item[1])

    assert held_out in ([("x", "a")], [("y", "a")])
    assert ("z", "b") in remaining
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        stratified_split(items, fraction=1.0, seed=0, key=lambda item: item[1])


def _intent_counts(splits) -> tuple[int, int, int]:
    return len(splits.train), len(splits.validation), len(splits.test)


def _oos_counts(splits) -> tuple[int, int, int]:
    return tuple(sum(item.intent == OUT_OF_SCOPE for item in part) for _, part in splits.items())


@pytest.mark.slow
def test_public_banking77(shared_data_dir):
    splits = read_public_intent_dataset("banking77", shared_data_dir)

    assert _intent_counts(splits) == (9003, 1000, 3080)
    assert len({item.intent for item in splits.train}) == 77
    assert len({item.intent for item in splits.validation}) == 77
    assert splits.language == "en"
    check_intent_labels(splits.train, splits.test, "test.csv")


@pytest.mark.slow
def test_public_banking77_oos(shared_data_dir):
    splits = read_public_intent_dataset("banking77_oos", shared_data_dir)
    with_oos = read_public_intent_dataset(
        "banking77_oos", shared_data_dir, include_oos_in_train=True
    )

    # Counts of SOURCE.md minus the empty lines of the files: train 2, id-oos train 8,
    # valid 2, test 4. Validation and test add ID-OOS and OOD-OOS.
    assert _intent_counts(splits) == (5903, 1506 + 528 + 200, 2000 + 1076 + 1000)
    assert _oos_counts(splits) == (0, 728, 2076)
    assert len({item.intent for item in splits.train}) == 50
    assert len(with_oos.train) == 5903 + 2054
    assert _oos_counts(with_oos)[0] == 2054


@pytest.mark.slow
def test_public_clinc150(shared_data_dir):
    splits = read_public_intent_dataset("clinc150", shared_data_dir)
    without_oos = read_public_intent_dataset(
        "clinc150", shared_data_dir, include_oos_in_train=False
    )

    assert _intent_counts(splits) == (15100, 3100, 5500)
    assert _oos_counts(splits) == (100, 100, 1000)
    assert len({item.intent for item in splits.train}) == 151
    assert len(without_oos.train) == 15000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "counts", "intents"),
    [
        ("hwu64", (8954, 1076, 1076), 64),
        ("snips", (13084, 700, 700), 7),
        ("atis", (4478, 500, 893), 21),
    ],
)
def test_public_seq_datasets(shared_data_dir, name, counts, intents):
    splits = read_public_intent_dataset(name, shared_data_dir)

    assert _intent_counts(splits) == counts
    assert len({item.intent for item in splits.train}) == intents


@pytest.mark.slow
def test_public_nlu_plus_plus(shared_data_dir):
    splits = read_public_intent_dataset("nlu_plus_plus", shared_data_dir)
    banking = read_public_intent_dataset(
        "nlu_plus_plus", shared_data_dir, nlupp_domains=("banking",)
    )

    # 2,071 banking + 1,009 hotels examples, of which 88 + 274 have no intents.
    assert sum(_intent_counts(splits)) == 2071 + 1009 - 88 - 274
    assert sum(_intent_counts(banking)) == 2071 - 88
    labels = {item.intent for _, part in splits.items() for item in part}
    assert {name for label in labels for name in label.split("+")} <= _nlupp_ontology_intents(
        shared_data_dir
    )
    assert all(label.split("+") == sorted(label.split("+")) for label in labels)


def _nlupp_ontology_intents(data_dir: Path) -> set[str]:
    import json

    ontology = json.loads((data_dir / "nlu_plus_plus" / "ontology.json").read_text("utf-8"))
    return set(ontology["intents"])


@pytest.mark.slow
def test_public_cais(shared_data_dir):
    splits = read_public_intent_dataset("cais", shared_data_dir)

    assert _intent_counts(splits) == (7995, 994, 1012)
    assert splits.language == "zh"
    assert splits.train[0].text == "我要听吴雨霏的歌"
    assert splits.train[0].intent == "PlayMusic"
    assert not any(item.text != item.text.strip() for item in splits.train)


@pytest.mark.slow
def test_public_smp(shared_data_dir):
    splits = read_public_intent_dataset("smp", shared_data_dir)
    again = read_public_intent_dataset("smp", shared_data_dir)

    texts = [item.text for _, part in splits.items() for item in part]
    # 2,579 + 5,024 utterances; 2,291 repeat an earlier text.
    assert len(texts) == 2579 + 5024 - 2291
    assert len(set(texts)) == len(texts)
    assert _intent_counts(splits) == (4250, 531, 531)
    assert again.test == splits.test
    assert all("." in item.intent for item in splits.train)


def test_public_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="unknown intent dataset 'sgd'; known: banking77, "):
        read_public_intent_dataset("sgd", tmp_path)


def test_public_missing_folder(tmp_path):
    with pytest.raises(DataNotFoundError, match="supportbot demo` does not download it") as caught:
        read_public_intent_dataset("clinc150", tmp_path)

    assert caught.value.path == str(tmp_path / "clinc150_oos")
    assert "github.com/clinc/oos-eval" in str(caught.value)


def test_public_missing_file(tmp_path):
    (tmp_path / "banking77").mkdir()
    _write(tmp_path / "banking77" / "train.csv", "text,category\nhi,greet\nbye,farewell\n")

    with pytest.raises(DataNotFoundError, match="the file does not exist") as caught:
        read_public_intent_dataset("banking77", tmp_path)

    assert caught.value.path == str(tmp_path / "banking77" / "test.csv")
