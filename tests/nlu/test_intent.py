"""Intent classification pieces: text cleaning, calibration, threshold, save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nlu.intent.calibration import expected_calibration_error, fit_temperature, softmax
from nlu.intent.charngram import CharNgramIntentModel, split_words
from nlu.intent.classifier import IntentClassifier, load_intent_classifier
from nlu.intent.threshold import choose_threshold, decide
from nlu.manifest import MANIFEST_NAME, ModelFolderError
from nlu.normalize import normalize_text
from nlu.types import OUT_OF_SCOPE

# A tiny support intent set written for these tests, in English and Chinese.
UTTERANCES = {
    "track_order": [
        "where is my order",
        "has my parcel shipped yet",
        "track my package please",
        "when will my order arrive",
        "my delivery is late, where is it",
        "I want to know where my order is",
        "我的快递到哪里了",
        "订单什么时候发货",
    ],
    "refund": [
        "I want my money back",
        "how do I get a refund",
        "please refund my purchase",
        "refund the item I returned",
        "can I get a refund for this order",
        "money back for a broken product",
        "我要退款",
        "怎么申请退款",
    ],
    "reset_password": [
        "I forgot my password",
        "reset my password please",
        "I cannot log in, password is wrong",
        "how do I change my password",
        "my password does not work",
        "help me recover my account password",
        "忘记密码了怎么办",
        "我想重置密码",
    ],
}


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    texts = [text for texts in UTTERANCES.values() for text in texts]
    labels = [label for label, texts in UTTERANCES.items() for _ in texts]
    return IntentClassifier(CharNgramIntentModel.fit(texts, labels), threshold=0.5)


@pytest.mark.parametrize(
    ("text", "has_content", "command"),
    [
        ("", False, None),
        ("   \t\n ", False, None),
        ("🙂🙂🙂", False, None),
        ("?!...,;", False, None),
        ("\u3000\u3000", False, None),
        ("/intent", True, "intent"),
        ("/Help me", True, "help"),
        ("a/b testing", True, None),
        ("我要退款 refund", True, None),
    ],
)
def test_normalize_finds_content_and_commands(text, has_content, command):
    result = normalize_text(text)

    assert result.has_content is has_content
    assert result.command == command


def test_normalize_folds_width_and_caps_length():
    assert normalize_text("ＡＢＣ　１２３").text == "ABC 123"

    long = normalize_text("x" * 100_000, max_chars=500)
    assert long.truncated
    assert len(long.text) == 500


def test_normalize_rejects_bad_limit():
    with pytest.raises(ValueError, match="max_chars must be positive"):
        normalize_text("hello", max_chars=0)


def test_temperature_lowers_overconfident_scores():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, size=300)
    scores = rng.normal(size=(300, 3))
    # Correct 60% of the time, with scores that claim near certainty.
    right = rng.random(300) < 0.6
    winners = np.where(right, targets, (targets + 1) % 3)
    scores[np.arange(300), winners] += 12.0

    temperature = fit_temperature(scores, targets)
    before = softmax(scores).max(axis=1)
    after = softmax(scores, temperature).max(axis=1)
    correct = scores.argmax(axis=1) == targets

    assert temperature > 2.0
    assert expected_calibration_error(after, correct) < expected_calibration_error(before, correct)


def test_decide_uses_threshold_and_oos_class():
    labels = ["a", "b", OUT_OF_SCOPE]
    probabilities = np.array([[0.8, 0.1, 0.1], [0.4, 0.35, 0.25], [0.2, 0.1, 0.7]])

    decisions, confidence = decide(probabilities, labels, threshold=0.5)

    assert decisions == ["a", OUT_OF_SCOPE, OUT_OF_SCOPE]
    assert confidence.tolist() == [0.8, 0.4, 0.2]


def test_threshold_separates_oos_validation():
    labels = ["a", "b"]
    in_scope = np.array([[0.9, 0.1]] * 8 + [[0.7, 0.3]] * 2)
    out_of_scope = np.array([[0.55, 0.45]] * 5)
    gold = ["a"] * 10 + [OUT_OF_SCOPE] * 5

    choice = choose_threshold(np.vstack([in_scope, out_of_scope]), labels, gold)

    assert 0.55 < choice.threshold <= 0.7
    assert choice.in_scope_accuracy == 1.0
    assert choice.oos_recall == 1.0
    assert choice.method == "oos_validation"


def test_threshold_without_oos_keeps_most_turns():
    labels = ["a", "b"]
    confidences = np.linspace(0.5, 1.0, 100)
    probabilities = np.stack([confidences, 1 - confidences], axis=1)

    choice = choose_threshold(probabilities, labels, ["a"] * 100, in_scope_loss=0.05)

    assert choice.method == "in_scope_quantile"
    assert choice.oos_recall is None
    assert 0.93 <= choice.in_scope_accuracy <= 0.96


def test_threshold_needs_in_scope_rows():
    with pytest.raises(ValueError, match="in-scope validation"):
        choose_threshold(np.array([[0.5, 0.5]]), ["a", "b"], [OUT_OF_SCOPE])


def test_split_words_chinese_and_english():
    assert "退款" in split_words("我要退款")
    assert split_words("Where is MY order?") == ["where", "is", "my", "order"]


def test_classifier_english_and_chinese(classifier):
    assert classifier.classify("where is my parcel").intent == "track_order"
    assert classifier.classify("请帮我退款").intent == "refund"
    assert classifier.classify("I forgot the password again").intent == "reset_password"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "no_content"), ("🙂🙂", "no_content"), ("?!?", "no_content"), ("/intent", "command")],
)
def test_classifier_empty_turns_out_of_scope(classifier, text, reason):
    prediction = classifier.classify(text)

    assert prediction.out_of_scope
    assert prediction.intent is None
    assert prediction.reason == reason


def test_classifier_huge_and_mixed_text(classifier):
    huge = classifier.classify("refund " * 20_000)
    mixed = classifier.classify("我的order在哪里 where is it")

    assert huge.intent == "refund" or huge.out_of_scope
    assert mixed.confidence > 0
    assert len(mixed.ranking) == 3


def test_classify_many_keeps_order(classifier):
    texts = ["", "I want a refund", "/help", "where is my order"]

    predictions = classifier.classify_many(texts)

    intents = [prediction.intent for prediction in predictions]
    assert intents == [None, "refund", None, "track_order"]


def test_save_and_load_round_trip(classifier, tmp_path):
    classifier.language = "en"
    classifier.save(tmp_path, dataset="handwritten")

    loaded = load_intent_classifier(tmp_path, version="intent-en-1")

    assert loaded.version == "intent-en-1"
    assert loaded.threshold == classifier.threshold
    assert loaded.max_chars == classifier.max_chars
    assert loaded.metadata["dataset"] == "handwritten"
    assert "max_chars" not in loaded.metadata
    for text in ("where is my order", "忘记密码了", "asdf"):
        assert loaded.classify(text) == classifier.classify(text)


def test_load_invalid_folder_errors(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist"):
        load_intent_classifier(tmp_path / "missing")

    with pytest.raises(ModelFolderError, match="no nlu_model.json"):
        load_intent_classifier(tmp_path)

    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"kind": "ner"}), encoding="utf-8")
    with pytest.raises(ModelFolderError, match="not a 'intent' model"):
        load_intent_classifier(tmp_path)

    (tmp_path / MANIFEST_NAME).write_text(
        json.dumps({"kind": "intent", "backend": "magic", "labels": []}), encoding="utf-8"
    )
    with pytest.raises(ModelFolderError, match="backend 'magic'"):
        load_intent_classifier(tmp_path)
