from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.ner import NerTrainingConfig, collect_labels, evaluate_tags, train_tagger
from finetune.nlu_data.tagging_readers import read_tagging_file
from nlu.taggers import MANIFEST_FILE, TaggerLoadError, load_tagger
from nlu.types import TaggedSentence
from nlu.words import split_words

CITIES = ["boston", "denver", "new york", "san francisco", "dallas", "salt lake city"]


def tagged(text: str, entities: list[tuple[str, str]]) -> TaggedSentence:
    """Tag the words of ``text`` inside each ``(surface, type)``; each surface occurs once."""
    words = split_words(text, "en")
    tags = ["O"] * len(words)
    for surface, entity_type in entities:
        start = text.index(surface)
        end = start + len(surface)
        inside = [i for i, word in enumerate(words) if word.start >= start and word.end <= end]
        tags[inside[0]] = f"B-{entity_type}"
        for index in inside[1:]:
            tags[index] = f"I-{entity_type}"
    return TaggedSentence(
        [word.text for word in words], tags, text, [(w.start, w.end) for w in words], "fixture"
    )


def flight_sentences(count: int) -> list[TaggedSentence]:
    sentences = []
    for number in range(count):
        origin = CITIES[number % len(CITIES)]
        destination = CITIES[(number + 1 + number // len(CITIES)) % len(CITIES)]
        if origin == destination:
            destination = CITIES[(number + 2) % len(CITIES)]
        text = f"show flights from {origin} to {destination} on monday"
        sentences.append(tagged(text, [(origin, "from"), (destination, "to")]))
    return sentences


class TestEvaluateTags:
    def test_perfect_prediction(self):
        gold = [["B-a", "I-a", "O"], ["O", "B-b"]]

        report = evaluate_tags(gold, gold)

        assert report["entity"]["micro"]["f1"] == 1.0
        assert report["entity"]["micro"]["support"] == 2
        assert report["token"]["accuracy"] == 1.0

    def test_orphan_inside_counts_as_served_entity(self):
        gold = [["O", "B-a", "I-a"]]
        predicted = [["O", "I-a", "I-a"]]

        report = evaluate_tags(gold, predicted)

        assert report["entity"]["micro"]["f1"] == 1.0
        assert report["token"]["accuracy"] == pytest.approx(2 / 3, abs=1e-4)

    def test_partial_prediction(self):
        gold = [["B-a", "O", "B-b", "I-b"]]
        predicted = [["B-a", "O", "B-b", "O"]]

        report = evaluate_tags(gold, predicted)

        assert report["entity"]["micro"]["precision"] == 0.5
        assert report["entity"]["micro"]["recall"] == 0.5
        assert report["entity"]["per_type"]["a"]["f1"] == 1.0
        assert report["entity"]["per_type"]["b"]["f1"] == 0.0
        assert report["token"]["per_tag"]["I-b"]["recall"] == 0.0

    def test_all_outside_scores_zero(self):
        report = evaluate_tags([["B-a", "O"]], [["O", "O"]])

        assert report["entity"]["micro"]["f1"] == 0.0

    def test_length_mismatch_rejected(self):
        with pytest.raises(ValueError, match="sentence 0 has 2 gold tags but 1 predicted"):
            evaluate_tags([["O", "O"]], [["O"]])
        with pytest.raises(ValueError, match="1 gold sentences but 2 predicted"):
            evaluate_tags([["O"]], [["O"], ["O"]])


def test_collect_labels_lists_both_prefixes():
    sentences = [tagged("fly to boston", [("boston", "to")]), tagged("new york", [])]

    assert collect_labels(sentences) == ["O", "B-to", "I-to"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"crf_c1": 0.1}, "set both"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"crf_grid": ()}, "crf_grid is empty"),
        ({"crf_grid": ((-1.0, 0.1),)}, "negative"),
    ],
)
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        NerTrainingConfig(**changes)


class TestTrainTaggerCrf:
    def test_writes_folder_and_report(self, tmp_path):
        sentences = flight_sentences(40)

        report = train_tagger(
            sentences[:30],
            sentences[30:],
            tmp_path,
            "crf",
            language="en",
            config=NerTrainingConfig(crf_grid=((0.05, 0.01), (0.5, 0.1)), crf_max_iterations=30),
        )

        manifest = json.loads((tmp_path / MANIFEST_FILE).read_text("utf-8"))
        written = json.loads((tmp_path / "eval_report.json").read_text("utf-8"))
        assert manifest["kind"] == "ner"
        assert manifest["backend"] == "crf"
        assert manifest["labels"] == ["O", "B-from", "I-from", "B-to", "I-to"]
        assert (tmp_path / "model.crfsuite").is_file()
        assert "| from |" in (tmp_path / "eval_report.md").read_text("utf-8")
        assert written == report
        assert report["evaluated_on"] == "validation"
        assert report["training"]["chosen_by"] == "validation"
        assert len(report["training"]["grid"]) == 2
        assert report["evaluation"]["entity"]["micro"]["f1"] > 0.9
        assert not list(tmp_path.glob("crf-grid-*"))

    def test_without_validation_uses_defaults(self, tmp_path):
        report = train_tagger(
            flight_sentences(12),
            None,
            tmp_path,
            "crf",
            language="en",
            config=NerTrainingConfig(crf_max_iterations=20),
        )

        assert report["evaluation"] is None
        assert report["training"]["chosen_by"] == "default"
        assert "nothing was scored" in (tmp_path / "eval_report.md").read_text("utf-8")
        assert load_tagger(tmp_path).predict("flights from denver to dallas")

    def test_unknown_backend_rejected(self, tmp_path):
        with pytest.raises(ValueError, match="unknown backend 'svm'"):
            train_tagger(flight_sentences(2), None, tmp_path, "svm", language="en")

    def test_empty_training_data_rejected(self, tmp_path):
        with pytest.raises(ValueError, match="no training sentences"):
            train_tagger([], None, tmp_path, "crf", language="en")

    def test_non_bio_tags_rejected_with_source(self, tmp_path):
        sentence = TaggedSentence(["a", "b"], ["B-x", "E-x"], "a b", [(0, 1), (2, 3)], "f.txt:7")

        with pytest.raises(ValueError, match="f.txt:7: tag 'E-x' at word 1"):
            train_tagger([sentence], None, tmp_path, "crf", language="en")


def test_missing_base_model_named(tmp_path):
    config = NerTrainingConfig(base_model="no-such-org/no-such-encoder")

    with pytest.raises(TaggerLoadError, match="'no-such-org/no-such-encoder' is not a local"):
        train_tagger(
            flight_sentences(4), None, tmp_path, "transformer", language="en", config=config
        )


@pytest.mark.slow
def test_transformer_learns_atis_slots(shared_data_dir, tmp_path):
    from safetensors.torch import load_file

    from nlu.taggers.transformer import resolve_base_model

    atis = shared_data_dir / "atis"
    train = read_tagging_file(atis / "train" / "seq.in", fmt="seq", scheme="bio")[:300]
    validation = read_tagging_file(atis / "valid" / "seq.in", fmt="seq", scheme="bio")[:60]
    test = read_tagging_file(atis / "test" / "seq.in", fmt="seq", scheme="bio")[:150]
    config = NerTrainingConfig(
        epochs=4, learning_rate=1e-4, head_learning_rate=3e-3, batch_size=16, max_length=64
    )

    report = train_tagger(
        train, validation, tmp_path, "transformer", language="en", config=config, test=test
    )

    micro = report["evaluation"]["entity"]["micro"]
    history = report["training"]["history"]
    # Tagging every word O, the majority tag, finds no entity: F1 0.
    assert micro["f1"] > 0.6
    assert len(history) == 4
    assert report["training"]["train_loss"] > 0
    assert report["training"]["best_epoch"] in [entry["epoch"] for entry in history]
    assert not (tmp_path / "checkpoints").exists()

    base = load_file(
        str(Path(resolve_base_model("packaged:all-MiniLM-L6-v2")[0]) / "model.safetensors")
    )
    tuned = load_file(str(tmp_path / "model.safetensors"))
    key = next(name for name in base if name.endswith("encoder.layer.5.output.dense.weight"))
    tuned_key = next(name for name in tuned if name.endswith(key))
    assert not (base[key] == tuned[tuned_key]).all()

    tagger = load_tagger(tmp_path, version="atis-smoke")
    text = "show me flights from boston to denver on monday"
    entities = tagger.predict(text)
    found = {(entity.type, entity.text) for entity in entities}
    assert ("fromloc.city_name", "boston") in found
    assert ("toloc.city_name", "denver") in found
    assert all(text[e.start : e.end] == e.text for e in entities)
    assert all(e.source == "model:atis-smoke" for e in entities)
