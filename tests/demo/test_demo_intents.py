"""The demo's intent data, intent model and answer templates, on the real SGD slice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.config import Settings
from bot.reply import ReplyPath
from bot.runtime import build_runtime, open_database
from bot.templates import load_templates
from finetune.splits import conversation_split
from nlu.intent.classifier import load_intent_classifier
from nlu.types import OUT_OF_SCOPE
from storage import model_registry
from storage.models import ModelKind
from ui.demo.answer_templates import DEMO_TEMPLATES_PATH, with_demo_templates
from ui.demo.corpus import build_demo_corpus
from ui.demo.intents import ensure_demo_intent_model, read_demo_intent_splits
from ui.demo.setup import SGD_FILES

SGD_FIXTURE = Path(__file__).parents[1] / "fixtures" / "dialogs" / "sgd" / "train"
DEMO_INTENTS = {"ReserveRestaurant", "FindRestaurants", "PlayMovie"}


def _conversation_id(source: str) -> str:
    return source.rsplit("#", 1)[0]


def test_reader_labels_stated_intents_only():
    splits = read_demo_intent_splits([SGD_FIXTURE / "dialogues_001.json"])

    labels = [(item.text, item.intent, item.source) for item in splits.train]
    # The fixture's two dialogs both hash into the train split.
    assert splits.validation == []
    assert splits.test == []
    # "I want to check my savings balance." has only an INFORM act, so it states no intent.
    assert labels == [
        ("I want to check my savings balance.", OUT_OF_SCOPE, "sgd:train/1_00000#1"),
        ("Please send 20 dollars to Anna.", "TransferMoney", "sgd:train/1_00001#1"),
        ("Checking, thanks.", OUT_OF_SCOPE, "sgd:train/1_00001#3"),
    ]


def test_reader_adds_faq_questions_as_oos(tmp_path):
    faq = tmp_path / "faq.jsonl"
    lines = [{"question": "How do I reset my password?", "answer": "Use the link."}, {}]
    faq.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")

    splits = read_demo_intent_splits([], faq)

    items = splits.train + splits.validation + splits.test
    assert [(item.text, item.intent) for item in items] == [
        ("How do I reset my password?", OUT_OF_SCOPE)
    ]
    expected_split = conversation_split("stackfaq:How do I reset my password?")
    assert dict(splits.items())[expected_split] == items


def test_reader_rejects_invalid_faq_line(tmp_path):
    faq = tmp_path / "faq.jsonl"
    faq.write_text("[1, 2]\n", encoding="utf-8")

    with pytest.raises(ValueError, match="faq.jsonl:1"):
        read_demo_intent_splits([], faq)


def test_template_file_loads_with_demo_labels():
    templates = load_templates(DEMO_TEMPLATES_PATH, known_intents=DEMO_INTENTS | {OUT_OF_SCOPE})

    assert templates.intents == DEMO_INTENTS
    assert templates.by_id("demo_reserve_table").required_slots == (
        "restaurant_name",
        "date",
        "time",
        "party_size",
    )


@pytest.fixture(scope="module")
def demo_slice(tmp_path_factory, shared_data_dir):
    """The demo's SGD files and FAQ file, written as ``prepare_demo`` writes them."""
    corpus = build_demo_corpus(
        shared_data_dir, tmp_path_factory.mktemp("demo"), sgd_files=SGD_FILES
    )
    sgd = next(dialogs for dialogs in corpus.dialog_slices if dialogs.format == "sgd")
    return sgd.paths, corpus.faq_path


def test_demo_slice_holds_out_test_conversations(demo_slice):
    sgd_paths, faq_path = demo_slice

    splits = read_demo_intent_splits(sgd_paths, faq_path)

    train_ids = {_conversation_id(item.source) for item in splits.train}
    test_ids = {_conversation_id(item.source) for item in splits.test}
    sgd_test_ids = {name for name in test_ids if name.startswith("sgd:train/")}
    assert len(sgd_test_ids) == 20
    assert train_ids.isdisjoint(test_ids)
    assert {conversation_split(name) for name in sgd_test_ids} == {"test"}
    assert {item.intent for item in splits.train} == DEMO_INTENTS | {OUT_OF_SCOPE}
    assert {item.intent for item in splits.test} == DEMO_INTENTS | {OUT_OF_SCOPE}
    test_questions = {item.text for item in splits.test if item.source.startswith(str(faq_path))}
    assert test_questions
    assert test_questions.isdisjoint(item.text for item in splits.train)


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, demo_slice):
    """A home whose registry has the demo intent model, trained once and started twice."""
    sgd_paths, faq_path = demo_slice
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home)
    engine, session_factory = open_database(settings)
    try:
        models_dir = home / "models" / "intent"
        first = ensure_demo_intent_model(session_factory, models_dir, sgd_paths, faq_path)
        second = ensure_demo_intent_model(session_factory, models_dir, sgd_paths, faq_path)
        with session_factory() as session:
            versions = model_registry.list_versions(session, ModelKind.INTENT)
            active = model_registry.get_active_version(session, ModelKind.INTENT, "en")
            active_name, active_path = active.version, active.path
    finally:
        engine.dispose()
    return home, first, second, [row.version for row in versions], active_name, active_path


@pytest.mark.slow
def test_demo_intent_model_trained_once(trained_home):
    _, first, second, versions, active_name, _ = trained_home

    assert versions == [active_name]
    assert first.startswith(f"Trained intent model {active_name} (active)")
    assert "held-out turns" in first
    assert second == f"Intent model {active_name} already serves English turns."


@pytest.mark.slow
def test_demo_intent_model_labels_fit_templates(trained_home):
    _, _, _, _, active_name, active_path = trained_home

    labels = load_intent_classifier(active_path, active_name).labels

    assert set(labels) == DEMO_INTENTS | {OUT_OF_SCOPE}
    templates = load_templates(DEMO_TEMPLATES_PATH, known_intents=labels)
    assert templates.intents <= set(labels)


@pytest.mark.slow
def test_demo_templates_set_only_when_unset(trained_home, tmp_path):
    home = trained_home[0]
    own_file = tmp_path / "own.yaml"

    demo = with_demo_templates(Settings(home=home))
    configured = with_demo_templates(Settings(home=home, policy={"templates_path": own_file}))
    without_model = with_demo_templates(Settings(home=tmp_path / "empty-home"))

    assert demo.policy.templates_path == DEMO_TEMPLATES_PATH
    assert configured.policy.templates_path == own_file
    assert without_model.policy.templates_path is None


@pytest.fixture(scope="module")
def template_runtime(trained_home, packaged_embedder, packaged_generator):
    runtime = build_runtime(
        with_demo_templates(Settings(home=trained_home[0])),
        embedder=packaged_embedder,
        generator=packaged_generator,
    )
    yield runtime
    runtime.close()


@pytest.mark.slow
def test_reservation_collects_slots_then_answers(template_runtime):
    manager = template_runtime.dialog_manager
    conversation_id = manager.start_conversation()
    turns = [
        ("I'd like to make a reservation at a restaurant.", "restaurant_name"),
        ("Sino", "date"),
        ("tomorrow", "time"),
        ("7 pm", "party_size"),
    ]

    for text, asked_slot in turns:
        reply = manager.respond(conversation_id, text)
        assert reply.path is ReplyPath.TEMPLATE, text
        assert reply.explanation["reason"] == "slot_prompt", text
        assert reply.explanation["template"]["asked_slot"] == asked_slot, text

    reply = manager.respond(conversation_id, "4 people")

    slots = reply.explanation["template"]["slots"]
    assert reply.path is ReplyPath.TEMPLATE
    assert reply.explanation["reason"] == "template_answer"
    assert reply.explanation["template"]["id"] == "demo_reserve_table"
    assert slots["restaurant_name"] == "Sino"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", slots["date"])
    assert slots["time"] == "19:00"
    assert slots["party_size"] == "4 people"
    assert reply.text.startswith("Here are the details of your table request: Sino, on ")
    assert "at 19:00, for 4 people." in reply.text
    assert "no table is reserved yet" in reply.text


@pytest.mark.slow
def test_faq_question_skips_templates(template_runtime):
    manager = template_runtime.dialog_manager

    reply = manager.respond(manager.start_conversation(), "How can I delete my facebook account?")

    assert reply.path is not ReplyPath.TEMPLATE
    assert reply.explanation["nlu"]["out_of_scope"] is True
