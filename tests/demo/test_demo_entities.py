"""The demo's entity data and CRF tagger, on a hand-written SGD file and the real SGD slice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.config import Settings
from bot.reply import ReplyPath
from bot.runtime import build_runtime, open_database
from finetune.nlu_data.public import _iter_sgd_dialogs, _iter_sgd_user_turns
from finetune.splits import conversation_split
from nlu.decoding import tag_spans
from nlu.taggers import load_tagger
from nlu.types import TaggedSentence
from storage import model_registry
from storage.models import ModelKind
from ui.demo.answer_templates import with_demo_templates
from ui.demo.corpus import build_demo_corpus
from ui.demo.entities import DEMO_ENTITY_TYPES, ensure_demo_entity_model, read_demo_entity_splits
from ui.demo.intents import ensure_demo_intent_model, read_demo_intent_splits
from ui.demo.setup import SGD_FILES


def _entities(sentence: TaggedSentence) -> list[tuple[str, str]]:
    """Return ``(type, text)`` of each tagged entity, in text order."""
    entities = []
    for span in tag_spans(sentence.tags):
        start = sentence.offsets[span.first][0]
        end = sentence.offsets[span.stop - 1][1]
        entities.append((span.type, sentence.text[start:end]))
    return entities


def _conversation_id(source: str) -> str:
    return source.rsplit("#", 1)[0]


def _slot(text: str, value: str, slot: str) -> dict:
    start = text.index(value)
    return {"slot": slot, "start": start, "exclusive_end": start + len(value)}


def _turn(speaker: str, text: str, slots: list[dict], actions: list[dict]) -> dict:
    frame = {"service": "Restaurants_1", "slots": slots, "actions": actions}
    return {"speaker": speaker, "utterance": text, "frames": [frame]}


def _write_reservation_dialog(path: Path) -> None:
    offer = "How about Pier 29 in Alameda? Tables are free at 2:30 pm."
    request = "Yes, a table at Pier 29 for 2 people at 2:30 pm please."
    confirm = "Please confirm: a table for two at Pier 29."
    dialog = {
        "dialogue_id": "1_00000",
        "services": ["Restaurants_1"],
        "turns": [
            _turn(
                "SYSTEM",
                offer,
                [
                    _slot(offer, "Pier 29", "restaurant_name"),
                    _slot(offer, "Alameda", "city"),
                    _slot(offer, "2:30 pm", "time"),
                ],
                [],
            ),
            _turn(
                "USER",
                request,
                [_slot(request, "2:30 pm", "time")],
                [{"act": "INFORM", "slot": "party_size", "values": ["2"]}],
            ),
            _turn(
                "SYSTEM",
                confirm,
                [_slot(confirm, "Pier 29", "restaurant_name")],
                [{"act": "CONFIRM", "slot": "party_size", "values": ["2"]}],
            ),
        ],
    }
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([dialog]), encoding="utf-8")


def test_reader_tags_names_and_party_size(tmp_path):
    path = tmp_path / "train" / "dialogues_001.json"
    _write_reservation_dialog(path)

    splits = read_demo_entity_splits([path])

    sentences = splits.train + splits.validation + splits.test
    assert [sentence.source for sentence in sentences] == [
        "sgd:train/1_00000#1",
        "sgd:train/1_00000#2",
        "sgd:train/1_00000#3",
    ]
    # Times are left to the rules, so "2:30 pm" is untagged and its "2" is no party size.
    assert _entities(sentences[0]) == [("restaurant_name", "Pier 29"), ("city", "Alameda")]
    assert _entities(sentences[1]) == [
        ("restaurant_name", "Pier 29"),
        ("party_size", "2 people"),
    ]
    assert _entities(sentences[2]) == [("party_size", "two"), ("restaurant_name", "Pier 29")]


def test_reader_rejects_invalid_dialog(tmp_path):
    path = tmp_path / "dialogues_001.json"
    path.write_text('{"dialogue_id": "1_00000"}', encoding="utf-8")

    with pytest.raises(ValueError, match="dialogues_001.json"):
        read_demo_entity_splits([path])


@pytest.fixture(scope="module")
def sgd_paths(tmp_path_factory, shared_data_dir):
    """The demo's SGD files, as ``prepare_demo`` finds them."""
    corpus = build_demo_corpus(
        shared_data_dir, tmp_path_factory.mktemp("demo"), sgd_files=SGD_FILES
    )
    sgd = next(dialogs for dialogs in corpus.dialog_slices if dialogs.format == "sgd")
    return list(sgd.paths)


@pytest.fixture(scope="module")
def demo_splits(sgd_paths):
    return read_demo_entity_splits(sgd_paths)


def test_demo_slice_holds_out_test_conversations(sgd_paths, demo_splits):
    intent_splits = read_demo_intent_splits(sgd_paths)

    train_ids = {_conversation_id(sentence.source) for sentence in demo_splits.train}
    test_ids = {_conversation_id(sentence.source) for sentence in demo_splits.test}
    assert len(test_ids) == 20
    assert train_ids.isdisjoint(test_ids)
    assert {conversation_split(name) for name in test_ids} == {"test"}
    assert test_ids == {_conversation_id(item.source) for item in intent_splits.test}


def test_demo_slice_tags_every_kept_type(demo_splits):
    for name, sentences in demo_splits.items():
        types = {entity_type for sentence in sentences for entity_type, _ in _entities(sentence)}
        assert types == DEMO_ENTITY_TYPES, name


def test_demo_slice_keeps_sgd_user_spans(sgd_paths, demo_splits):
    """Every user-turn span of a kept type that the public SGD reader finds is tagged."""
    tagged = {
        (sentence.text, entity)
        for _, sentences in demo_splits.items()
        for sentence in sentences
        for entity in _entities(sentence)
    }
    expected = set()
    for path, dialog in _iter_sgd_dialogs(sgd_paths):
        for _, text, spans in _iter_sgd_user_turns(path, dialog):
            for start, end, slot in spans:
                if slot in DEMO_ENTITY_TYPES:
                    expected.add((text, (slot, text[start:end])))

    assert len(expected) > 400
    assert expected - tagged == set()


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, sgd_paths):
    """A home with the demo intent model and the demo tagger, started twice."""
    home = tmp_path_factory.mktemp("home")
    engine, session_factory = open_database(Settings(home=home))
    try:
        ensure_demo_intent_model(session_factory, home / "models" / "intent", sgd_paths, None)
        first = ensure_demo_entity_model(session_factory, home / "models" / "ner", sgd_paths)
        second = ensure_demo_entity_model(session_factory, home / "models" / "ner", sgd_paths)
        with session_factory() as session:
            versions = [row.version for row in model_registry.list_versions(session, ModelKind.NER)]
            active = model_registry.get_active_version(session, ModelKind.NER, "en")
            active_name, active_path = active.version, active.path
            data_stats = dict(active.data_stats)
    finally:
        engine.dispose()
    return home, first, second, versions, active_name, active_path, data_stats


@pytest.mark.slow
def test_demo_entity_model_trained_once(trained_home, demo_splits):
    _, first, second, versions, active_name, _, data_stats = trained_home

    assert versions == [active_name]
    assert data_stats["train"] == len(demo_splits.train)
    assert data_stats["test"] == len(demo_splits.test)
    assert first.startswith(f"Trained entity model {active_name} (active)")
    assert "entity F1 0." in first
    assert second == f"Entity model {active_name} already serves English turns."


@pytest.mark.slow
def test_demo_tagger_finds_unseen_restaurant(trained_home):
    _, _, _, _, active_name, active_path, _ = trained_home
    tagger = load_tagger(active_path, version=active_name)

    # Neither name occurs in the demo's SGD files.
    booking = tagger.predict("I'd like to book a table at Sino for 4 people")
    request = tagger.predict("I want to reserve a table for 2 at Mandarin House tomorrow")

    assert [(entity.type, entity.text) for entity in booking] == [
        ("restaurant_name", "Sino"),
        ("party_size", "4 people"),
    ]
    assert ("restaurant_name", "Mandarin House") in [(e.type, e.text) for e in request]
    assert ("party_size", "2") in [(e.type, e.text) for e in request]


@pytest.fixture(scope="module")
def entity_runtime(trained_home, packaged_embedder, packaged_generator):
    runtime = build_runtime(
        with_demo_templates(Settings(home=trained_home[0])),
        embedder=packaged_embedder,
        generator=packaged_generator,
    )
    yield runtime
    runtime.close()


@pytest.mark.slow
def test_reservation_asks_only_missing_slots(entity_runtime):
    manager = entity_runtime.dialog_manager
    conversation_id = manager.start_conversation()

    first = manager.respond(conversation_id, "I'd like to book a table at Sino for 4 people")
    second = manager.respond(conversation_id, "tomorrow")
    answer = manager.respond(conversation_id, "7 pm")

    assert first.path is ReplyPath.TEMPLATE
    assert first.explanation["reason"] == "slot_prompt"
    assert first.explanation["template"]["asked_slot"] == "date"
    assert second.explanation["reason"] == "slot_prompt"
    assert second.explanation["template"]["asked_slot"] == "time"
    slots = answer.explanation["template"]["slots"]
    assert answer.path is ReplyPath.TEMPLATE
    assert answer.explanation["reason"] == "template_answer"
    assert slots["restaurant_name"] == "Sino"
    assert slots["party_size"] == "4 people"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", slots["date"])
    assert slots["time"] == "19:00"
    assert answer.text.startswith("Here are the details of your table request: Sino, on ")
    assert "at 19:00, for 4 people." in answer.text
