from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finetune.ner import NerTrainingConfig, train_tagger
from finetune.nlu_data.tagging_readers import read_tagging_file
from nlu.manifest import ModelFolderError
from nlu.taggers import MANIFEST_FILE, EntityTagger, TaggerLoadError, load_tagger
from nlu.taggers.crf_features import char_type, sentence_features, word_shape
from nlu.types import TaggedSentence
from nlu.words import split_words

ORDERS = ["ORD-2024-0001", "ORD-2023-1234", "ORD-2025-0042", "ORD-2022-7781", "ORD-2024-5150"]
PRODUCTS = ["blue kettle", "phone case", "usb cable", "desk lamp", "coffee grinder"]
TEMPLATES = [
    "where is my order {order}",
    "track order {order} please",
    "i want to return the {product}",
    "cancel order {order} for the {product}",
    "has {order} shipped yet",
    "the {product} from {order} is broken",
]


def tagged(text: str, entities: list[tuple[str, str]], language: str = "en") -> TaggedSentence:
    """Tag the words of ``text`` that lie inside each ``(surface, type)`` entity."""
    words = split_words(text, language)
    tags = ["O"] * len(words)
    for surface, entity_type in entities:
        start = text.index(surface)
        inside = [
            i for i, w in enumerate(words) if w.start >= start and w.end <= start + len(surface)
        ]
        tags[inside[0]] = f"B-{entity_type}"
        for index in inside[1:]:
            tags[index] = f"I-{entity_type}"
    return TaggedSentence(
        [w.text for w in words], tags, text, [(w.start, w.end) for w in words], "test"
    )


def order_sentences() -> list[TaggedSentence]:
    sentences = []
    for number, template in enumerate(TEMPLATES * 5):
        order = ORDERS[number % len(ORDERS)]
        product = PRODUCTS[(number * 3) % len(PRODUCTS)]
        text = template.format(order=order, product=product)
        entities = [(order, "order_id")] if "{order}" in template else []
        entities += [(product, "product")] if "{product}" in template else []
        sentences.append(tagged(text, entities))
    return sentences


@pytest.fixture(scope="module")
def crf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crf_tagger")
    sentences = order_sentences()
    train_tagger(
        sentences,
        sentences[:6],
        folder,
        "crf",
        language="en",
        config=NerTrainingConfig(crf_c1=0.05, crf_c2=0.01, crf_max_iterations=50),
        version="orders-1",
    )
    return folder


@pytest.fixture
def crf_copy(crf_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(crf_folder, tmp_path / "copy"))


def _span(entity) -> tuple[str, str, int, int]:
    return entity.type, entity.text, entity.start, entity.end


def _edit_manifest(folder: Path, **changes) -> None:
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text("utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), "utf-8")


@pytest.fixture(scope="module")
def transformer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("transformer_tagger")
    sentences = order_sentences()
    config = NerTrainingConfig(epochs=2, batch_size=8, max_length=32)
    train_tagger(
        sentences, None, folder, "transformer", language="en", config=config, version="orders-2"
    )
    return folder


class EntityTaggerContract:
    """Checks that every backend passes; a subclass provides the ``tagger_folder`` fixture."""

    def test_satisfies_protocol(self, tagger_folder):
        tagger = load_tagger(tagger_folder, version="v9")

        assert isinstance(tagger, EntityTagger)
        assert tagger.version == "v9"
        assert tagger.language == "en"
        assert tagger.labels[0] == "O"
        assert {"B-order_id", "I-product"} <= set(tagger.labels)

    def test_predict_many_matches_predict(self, tagger_folder):
        tagger = load_tagger(tagger_folder)
        texts = ["track order ORD-2024-0001 please", "", "i want to return the desk lamp"]

        batch = tagger.predict_many(texts)
        single = [tagger.predict(text) for text in texts]

        # Padding in a batch changes the transformer's floats in the last digits only.
        assert [[_span(e) for e in entities] for entities in batch] == [
            [_span(e) for e in entities] for entities in single
        ]
        for batch_entities, single_entities in zip(batch, single, strict=True):
            for in_batch, alone in zip(batch_entities, single_entities, strict=True):
                assert in_batch.confidence == pytest.approx(alone.confidence, abs=1e-5)
        assert batch[1] == []

    @pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u200b"])
    def test_empty_text(self, tagger_folder, text):
        assert load_tagger(tagger_folder).predict(text) == []

    def test_huge_text_is_truncated(self, tagger_folder):
        tagger = load_tagger(tagger_folder)
        text = ("where is my order ORD-2024-0001 " * 4000)[:100_000]

        entities = tagger.predict(text)

        assert len(text) == 100_000
        # Both backends tag at most a few thousand characters of the text.
        assert all(entity.end <= 5_000 for entity in entities)
        assert all(text[entity.start : entity.end] == entity.text for entity in entities)

    def test_entities_carry_version_and_offsets(self, tagger_folder):
        tagger = load_tagger(tagger_folder, version="v3")
        texts = [sentence.text for sentence in order_sentences()[:6]]

        predictions = tagger.predict_many(texts)

        assert any(predictions), "the tagger found no entity in its own training sentences"
        for text, entities in zip(texts, predictions, strict=True):
            for entity in entities:
                assert entity.source == "model:v3"
                assert text[entity.start : entity.end] == entity.text
                assert 0.0 < entity.confidence <= 1.0


class TestCrfTagger(EntityTaggerContract):
    @pytest.fixture
    def tagger_folder(self, crf_folder):
        return crf_folder

    def test_round_trip_finds_unseen_order(self, crf_folder):
        tagger = load_tagger(crf_folder)
        text = "where is my order ORD-2026-9999"

        entities = tagger.predict(text)

        assert [(e.type, e.text) for e in entities] == [("order_id", "ORD-2026-9999")]
        assert (entities[0].start, entities[0].end) == (18, 31)
        assert entities[0].source == "model:orders-1"

    def test_huge_text_stops_at_word_limit(self, crf_folder):
        tagger = load_tagger(crf_folder)
        text = ("where is my order ORD-2024-0001 " * 4000)[:100_000]
        limit = tagger.manifest.max_length
        last_tagged_end = split_words(text, "en")[limit - 1].end

        entities = tagger.predict(text)

        assert entities
        assert all(entity.end <= last_tagged_end for entity in entities)

    def test_missing_folder(self, tmp_path):
        with pytest.raises(TaggerLoadError, match="does not exist"):
            load_tagger(tmp_path / "nope")

    def test_missing_manifest(self, tmp_path):
        with pytest.raises(TaggerLoadError, match="no nlu_model.json"):
            load_tagger(tmp_path)

    def test_intent_folder_rejected(self, crf_copy):
        _edit_manifest(crf_copy, kind="intent")

        with pytest.raises(ModelFolderError, match="'intent' model, not a 'ner' model"):
            load_tagger(crf_copy)

    def test_unknown_backend_rejected(self, crf_copy):
        _edit_manifest(crf_copy, backend="bilstm")

        with pytest.raises(TaggerLoadError, match="unknown backend 'bilstm'"):
            load_tagger(crf_copy)

    def test_missing_model_file(self, crf_copy):
        (crf_copy / "model.crfsuite").unlink()

        with pytest.raises(TaggerLoadError, match=r"model\.crfsuite not found"):
            load_tagger(crf_copy)

    def test_labels_mismatch_rejected(self, crf_copy):
        _edit_manifest(crf_copy, labels=["O", "B-order_id", "I-order_id"])

        with pytest.raises(TaggerLoadError, match="does not list"):
            load_tagger(crf_copy)

    def test_feature_version_mismatch_rejected(self, crf_copy):
        _edit_manifest(crf_copy, features={"set": "word", "version": 0})

        with pytest.raises(TaggerLoadError, match="features version 0"):
            load_tagger(crf_copy)

    def test_invalid_label_rejected(self, crf_copy):
        _edit_manifest(crf_copy, labels=["O", "S-order_id"])

        with pytest.raises(TaggerLoadError, match="invalid label 'S-order_id'"):
            load_tagger(crf_copy)


@pytest.mark.slow
def test_crf_finds_unspaced_chinese_entity(shared_data_dir, tmp_path):
    path = shared_data_dir / "chinese_nlu_cais" / "train" / "ch.train"
    sentences = read_tagging_file(path, fmt="chars", scheme="bioes")[:400]
    train_tagger(
        sentences,
        None,
        tmp_path,
        "crf",
        language="zh",
        config=NerTrainingConfig(crf_c1=0.05, crf_c2=0.01),
    )
    tagger = load_tagger(tmp_path)
    text = "我想听周杰伦的歌"

    entities = tagger.predict(text)

    assert ("singer_name", "周杰伦", 3, 6) in [(e.type, e.text, e.start, e.end) for e in entities]


@pytest.mark.parametrize(
    ("word", "shape"),
    [("ORD-2024-0001", "XX-dd-dd"), ("Hello", "Xxx"), ("a1", "xd"), ("3:30pm", "d:ddxx")],
)
def test_word_shape(word, shape):
    assert word_shape(word) == shape


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("周", "han"),
        ("t", "latin"),
        ("é", "latin"),
        ("7", "digit"),
        ("。", "punct"),
        ("$", "punct"),
    ],
)
def test_char_type(char, kind):
    assert char_type(char) == kind


def test_sentence_features_one_dict_per_word():
    chars = list("我要听tf")

    features = sentence_features(chars, "char")

    assert len(features) == 5
    assert features[0]["c[-1]"] == "<s1>"
    assert features[3]["c[0]"] == "t"
    assert features[3]["t[-1]"] == "han"
    assert features[4]["last"] == 1.0
    with pytest.raises(ValueError, match="unknown CRF feature set 'bigram'"):
        sentence_features(chars, "bigram")


@pytest.mark.slow
class TestTransformerTagger(EntityTaggerContract):
    @pytest.fixture
    def tagger_folder(self, transformer_folder):
        return transformer_folder

    def test_manifest_records_settings(self, transformer_folder):
        tagger = load_tagger(transformer_folder)

        assert tagger.version == "orders-2"
        assert tagger.manifest.base_model == "packaged:all-MiniLM-L6-v2"
        assert tagger.manifest.max_length == 32
        assert tagger.manifest.extra["decoding"] == "viterbi"

    def test_manifest_labels_mismatch(self, transformer_folder, tmp_path):
        folder = Path(shutil.copytree(transformer_folder, tmp_path / "copy"))
        _edit_manifest(folder, labels=["O", "B-order_id", "I-order_id"])

        with pytest.raises(TaggerLoadError, match="labels differ"):
            load_tagger(folder)

    def test_unknown_decoding_rejected(self, transformer_folder, tmp_path):
        folder = Path(shutil.copytree(transformer_folder, tmp_path / "copy"))
        _edit_manifest(folder, decoding="beam")

        with pytest.raises(TaggerLoadError, match="decoding 'beam' is unknown"):
            load_tagger(folder)

    def test_missing_weights(self, transformer_folder, tmp_path):
        folder = Path(shutil.copytree(transformer_folder, tmp_path / "copy"))
        (folder / "model.safetensors").unlink()

        with pytest.raises(TaggerLoadError, match="could not be loaded"):
            load_tagger(folder)
