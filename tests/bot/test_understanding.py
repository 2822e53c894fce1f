"""Understander: intent, out-of-scope verdict, entities and slots of one customer turn.

The fast tests use models trained in about a second on the hand-written files under
tests/fixtures/nlu. The slow tests train on slices of BANKING77 and CAIS, where the
models see enough data for out-of-scope verdicts on unrelated questions to mean something.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import NluSettings
from bot.nlu_models import NluModels
from bot.runtime import build_nlu_models
from bot.understanding import Understander, Understanding
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier
from finetune.ner.train import train_tagger
from finetune.nlu_data.intent_readers import read_intent_file
from finetune.nlu_data.public import read_public_intent_dataset, read_public_tagging_dataset
from finetune.nlu_data.tagging_readers import read_tagging_file
from nlu.rules.registry import build_rule_extractors
from retrieval.language import detect_language
from storage import model_registry
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.models import ModelKind, ModelStatus

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlu"
# Monday 2 March 2026, 10:00 UTC: "tomorrow" and "明天" are 2026-03-03.
REFERENCE_TIME = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
BANKING_INTENTS = (
    "card_arrival", "request_refund", "change_pin", "exchange_rate", "terminate_account",
)  # fmt: skip
CAIS_INTENTS = ("PlayMusic", "GetWeather", "Remind", "PlayFMStory")


def _register_active(session_factory, version: str, path: Path, kind: ModelKind, language) -> None:
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=kind, version=version, base_model="test", language=language
        )
        model_registry.finish_version(session, version, status=ModelStatus.READY, path=str(path))
        model_registry.activate_version(session, version, reason="test")


def _session_factory(folder: Path):
    engine = create_db_engine(f"sqlite:///{folder / 'test.db'}")
    upgrade_schema(engine)
    return engine, create_session_factory(engine)


def _train_fixture_intents(language: str, suffix: str, out_dir: Path) -> Path:
    result = train_intent_classifier(
        read_intent_file(FIXTURES / f"intents_{language}_train.{suffix}"),
        read_intent_file(FIXTURES / f"intents_{language}_validation.{suffix}"),
        [],
        out_dir,
        IntentTrainingOptions(backend="charngram"),
    )
    return result.model_dir


@pytest.fixture(scope="module")
def fixture_models(tmp_path_factory: pytest.TempPathFactory):
    """English and Chinese intent models and a Chinese CRF tagger, all active."""
    root = tmp_path_factory.mktemp("understanding")
    english = _train_fixture_intents("en", "csv", root / "intent-en")
    chinese = _train_fixture_intents("zh", "jsonl", root / "intent-zh")
    tagged = read_tagging_file(FIXTURES / "entities_zh_train.jsonl", language="zh")
    train_tagger(tagged, None, root / "ner-zh", "crf", language="zh")

    engine, session_factory = _session_factory(root)
    _register_active(session_factory, "intent-en-1", english, ModelKind.INTENT, "en")
    _register_active(session_factory, "intent-zh-1", chinese, ModelKind.INTENT, "zh-CN")
    _register_active(session_factory, "ner-zh-1", root / "ner-zh", ModelKind.NER, "zh-CN")
    yield build_nlu_models(session_factory)
    engine.dispose()


@pytest.fixture(scope="module")
def understander(fixture_models: NluModels) -> Understander:
    return Understander(fixture_models, NluSettings(timezone="UTC"))


def _understand(understander: Understander, text: str, language: str = "en") -> Understanding:
    return understander.understand(text, language, reference_time=REFERENCE_TIME)


def _assert_offsets_index_original(text: str, understanding: Understanding) -> None:
    for entity in understanding.entities:
        assert text[entity.start : entity.end] == entity.text, entity


def test_english_turn_intent_and_rule_entities(understander):
    # The emoji and doubled spaces shift the cleaned text, so its offsets would be wrong here.
    text = "🙏  Please  refund $25.50 for order A12345678 to jane.doe@example.com by March 5, 2026"

    understanding = _understand(understander, text)

    intent = understanding.intent
    assert intent.intent == "request_refund"
    assert intent.out_of_scope is False
    assert intent.reason is None
    assert intent.confidence >= intent.threshold
    assert 0.0 < intent.confidence <= 1.0
    found = [(e.type, e.text, e.start, e.end) for e in understanding.entities]
    assert found == [
        ("money", "$25.50", text.index("$"), text.index("$") + 6),
        ("order_id", "A12345678", text.index("A1"), text.index("A1") + 9),
        ("email", "jane.doe@example.com", text.index("jane"), text.index(" by")),
        ("date", "March 5, 2026", text.index("March"), len(text)),
    ]
    _assert_offsets_index_original(text, understanding)
    assert {name: entity.value for name, entity in understanding.slots.items()} == {
        "money": "25.50 USD",
        "order_id": "A12345678",
        "email": "jane.doe@example.com",
        "date": "2026-03-05",
    }
    assert understanding.language == "en"
    assert understanding.versions == {"intent": "intent-en-1", "ner": None}
    assert understanding.truncated is False


def test_explanation_is_json_ready(understander):
    understanding = _understand(understander, "Cancel my order A12345678 please")

    explanation = json.loads(json.dumps(understanding.to_explanation()))

    assert explanation["intent"] == "cancel_order"
    assert explanation["out_of_scope"] is False
    assert explanation["slots"] == {"order_id": "A12345678"}
    assert explanation["entities"][0]["source"] == "rule:id"
    assert explanation["versions"] == {"intent": "intent-en-1", "ner": None}
    assert explanation["ranking"][0][0] == "cancel_order"
    assert explanation["elapsed_ms"] >= 0


def test_gibberish_out_of_scope(understander):
    understanding = _understand(understander, "asdkj qwpoe zxmn")

    assert understanding.intent.intent is None
    assert understanding.intent.out_of_scope is True
    assert understanding.intent.reason == "below_threshold"
    assert understanding.intent.confidence < understanding.intent.threshold
    assert understanding.entities == []


@pytest.mark.parametrize(
    "text",
    [
        "😀🎉👍",
        "?!…",
        "!!! ??? ...",
        "\u3000\u2003\u00a0",  # ideographic, em and no-break spaces: empty after NFKC
        "\u200b\u200b",  # zero-width spaces
    ],
    ids=["emoji", "punctuation", "spaced_punctuation", "unicode_spaces", "zero_width"],
)
def test_text_without_content_out_of_scope(understander, text):
    understanding = _understand(understander, text)

    assert understanding.intent.intent is None
    assert understanding.intent.out_of_scope is True
    assert understanding.intent.reason == "no_content"
    assert understanding.intent.confidence == 0.0
    assert understanding.entities == []
    assert understanding.slots == {}
    assert understanding.versions["intent"] == "intent-en-1"


def test_slash_command_not_classified(understander):
    understanding = _understand(understander, "/intent")

    assert understanding.intent.intent is None
    assert understanding.intent.out_of_scope is True
    assert understanding.intent.reason == "command"
    assert understanding.entities == []


def test_slash_command_keeps_rule_entities(understander):
    text = "/intent where is order A12345678?"

    understanding = _understand(understander, text)

    assert understanding.intent.reason == "command"
    assert [entity.text for entity in understanding.entities] == ["A12345678"]
    _assert_offsets_index_original(text, understanding)


def test_huge_message_truncated(understander):
    head = "Please cancel order A12345678. "
    tail = " Write to me at late.reader@example.com"
    text = head + "I changed my mind about it. " * 3570 + tail
    assert len(text) > 100_000

    understanding = _understand(understander, text)

    assert understanding.truncated is True
    assert understanding.intent.intent == "cancel_order"
    # Rules and models read the first nlu.max_chars characters only.
    assert [entity.type for entity in understanding.entities] == ["order_id"]
    _assert_offsets_index_original(text, understanding)


def test_mixed_chinese_english_turn(understander):
    text = "我想查一下order A12345678的物流"
    language = detect_language(text)

    understanding = _understand(understander, text, language)

    assert language == "zh-CN"
    assert understanding.versions["intent"] == "intent-zh-1"
    assert understanding.intent.intent == "track_order"
    assert understanding.intent.out_of_scope is False
    order_ids = [entity for entity in understanding.entities if entity.type == "order_id"]
    assert [(e.text, e.start, e.end) for e in order_ids] == [("A12345678", 11, 20)]
    _assert_offsets_index_original(text, understanding)


def test_full_width_entities_keep_original_text(understander):
    text = "订单号Ａ１２３４５６７８要退款￥１９９"

    understanding = _understand(understander, text, "zh-CN")

    found = [(e.type, e.text, e.value, e.start) for e in understanding.entities]
    assert found == [
        ("order_id", "Ａ１２３４５６７８", "A12345678", 3),
        ("money", "￥１９９", "199 CNY", 15),
    ]
    _assert_offsets_index_original(text, understanding)
    assert understanding.intent.reason in (None, "below_threshold")


def test_chinese_turn_uses_chinese_models(understander, fixture_models):
    text = "我的快递明天能送到杭州吗"

    understanding = _understand(understander, text, "zh-CN")

    assert understanding.intent.intent == "track_order"
    assert understanding.versions == {"intent": "intent-zh-1", "ner": "ner-zh-1"}
    found = [(e.type, e.text, e.start, e.end) for e in understanding.entities]
    assert found == [("date", "明天", 4, 6), ("city", "杭州", 9, 11)]
    assert understanding.entities[1].source == "model:ner-zh-1"
    assert {name: entity.value for name, entity in understanding.slots.items()} == {
        "date": "2026-03-03",
        "city": "杭州",
    }


def test_rule_and_tagger_same_span(understander, fixture_models):
    text = "明天能送到上海吗"
    tagger = fixture_models.get(ModelKind.NER, "zh-CN").model
    tagged_dates = [(e.start, e.end) for e in tagger.predict(text) if e.type == "date"]
    assert tagged_dates == [(0, 2)], "precondition: the tagger finds the date the rule finds"

    understanding = _understand(understander, text, "zh-CN")

    dates = [entity for entity in understanding.entities if entity.type == "date"]
    assert len(dates) == 1
    # Dates have a fixed shape, so the rule's entity wins and its value is an ISO date.
    assert dates[0].source == "rule:datetime"
    assert dates[0].value == "2026-03-03"
    assert understanding.slots["date"] is dates[0]


def test_same_digits_from_two_rules_give_one_entity(understander):
    text = "My order 13812345678 has not arrived"
    for rule_type in ("phone", "order_id"):
        alone = build_rule_extractors(enabled_types=[rule_type], timezone=UTC)
        found = alone.extract(text, REFERENCE_TIME)
        assert [(e.type, e.start, e.end) for e in found] == [(rule_type, 9, 20)], "precondition"

    understanding = _understand(understander, text)

    assert [(e.type, e.text) for e in understanding.entities] == [("order_id", "13812345678")]
    assert list(understanding.slots) == ["order_id"]


def test_no_active_model_still_runs_rules(tmp_path):
    engine, session_factory = _session_factory(tmp_path)
    understander = Understander(build_nlu_models(session_factory), NluSettings(timezone="UTC"))

    understanding = _understand(understander, "Refund order A12345678 to a.b@example.com")
    engine.dispose()

    assert understanding.intent.intent is None
    assert understanding.intent.out_of_scope is True
    assert understanding.intent.reason == "no_model"
    assert understanding.versions == {"intent": None, "ner": None}
    assert [entity.type for entity in understanding.entities] == ["order_id", "email"]


def test_language_without_model_gets_no_model(understander):
    understanding = _understand(understander, "Wo ist meine Bestellung?", "de")

    assert understanding.intent.reason == "no_model"
    assert understanding.versions == {"intent": None, "ner": None}


def _take_per_intent(items, intents, count: int) -> list:
    kept_by_intent: dict[str, list] = defaultdict(list)
    for item in items:
        if item.intent in intents and len(kept_by_intent[item.intent]) < count:
            kept_by_intent[item.intent].append(item)
    return [item for intent in intents for item in kept_by_intent[intent]]


@pytest.fixture(scope="module")
def public_understander(tmp_path_factory, shared_data_dir) -> Understander:
    """Models trained on 5 BANKING77 intents, 4 CAIS intents and 300 CAIS sentences."""
    root = tmp_path_factory.mktemp("understanding-public")
    banking = read_public_intent_dataset("banking77", shared_data_dir)
    english = train_intent_classifier(
        _take_per_intent(banking.train, BANKING_INTENTS, 60),
        _take_per_intent(banking.validation, BANKING_INTENTS, 10),
        [],
        root / "intent-en",
        IntentTrainingOptions(backend="charngram", language="en"),
    )
    cais = read_public_intent_dataset("cais", shared_data_dir)
    chinese = train_intent_classifier(
        _take_per_intent(cais.train, CAIS_INTENTS, 50),
        _take_per_intent(cais.validation, CAIS_INTENTS, 10),
        [],
        root / "intent-zh",
        IntentTrainingOptions(backend="charngram", language="zh-CN"),
    )
    tagging = read_public_tagging_dataset("cais", shared_data_dir)
    train_tagger(
        tagging.train[:300], tagging.validation[:100], root / "ner-zh", "crf", language="zh"
    )

    engine, session_factory = _session_factory(root)
    _register_active(session_factory, "intent-en-b77", english.model_dir, ModelKind.INTENT, "en")
    _register_active(
        session_factory, "intent-zh-cais", chinese.model_dir, ModelKind.INTENT, "zh-CN"
    )
    _register_active(session_factory, "ner-zh-cais", root / "ner-zh", ModelKind.NER, "zh-CN")
    yield Understander(build_nlu_models(session_factory), NluSettings(timezone="UTC"))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        "asdkj qwpoe zxmn",
        "What is the boiling point of tungsten in kelvin?",
        "Who won the football world cup in 1998?",
    ],
)
def test_public_english_unrelated_out_of_scope(public_understander, text):
    understanding = _understand(public_understander, text)

    assert understanding.intent.intent is None
    assert understanding.intent.out_of_scope is True
    assert understanding.intent.reason == "below_threshold"


@pytest.mark.slow
def test_public_english_in_scope_with_entities(public_understander):
    text = "I want a refund of $40 for order A12345678, please email me at ann@example.org"

    understanding = _understand(public_understander, text)

    assert understanding.intent.intent == "request_refund"
    assert understanding.intent.out_of_scope is False
    assert [entity.type for entity in understanding.entities] == ["money", "order_id", "email"]
    _assert_offsets_index_original(text, understanding)


@pytest.mark.slow
def test_public_chinese_weather_turn(public_understander):
    text = "明天上海天气怎么样"

    understanding = _understand(public_understander, text, "zh-CN")

    assert understanding.intent.intent == "GetWeather"
    assert understanding.versions == {"intent": "intent-zh-cais", "ner": "ner-zh-cais"}
    found = [(e.type, e.text, e.source) for e in understanding.entities]
    assert found == [("date", "明天", "rule:datetime"), ("location", "上海", "model:ner-zh-cais")]
    assert understanding.slots["date"].value == "2026-03-03"


@pytest.mark.slow
def test_public_chinese_music_turn_tags_singer(public_understander):
    text = "我想听周杰伦的稻香"

    understanding = _understand(public_understander, text, "zh-CN")

    assert understanding.intent.intent == "PlayMusic"
    types = {entity.type for entity in understanding.entities}
    assert "singer_name" in types
    _assert_offsets_index_original(text, understanding)


@pytest.mark.slow
def test_public_chinese_reminder_one_time_entity(public_understander):
    text = "明天早上七点叫我起床"
    tagger = public_understander.models.get(ModelKind.NER, "zh-CN").model
    tagged = [(e.type, e.start, e.end) for e in tagger.predict(text) if e.start < 6]
    assert tagged == [("date", 0, 6)], "precondition: the tagger finds the time as a date"

    understanding = _understand(public_understander, text, "zh-CN")

    assert understanding.intent.intent == "Remind"
    spans = [(e.start, e.end) for e in understanding.entities if e.start < 6]
    assert spans == [(0, 6)]
    assert understanding.slots["datetime"].value == "2026-03-03T07:00"
    assert "date" not in understanding.slots
