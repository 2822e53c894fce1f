"""Intent training on small real slices: backends, out-of-scope, report, versions."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from finetune.intent.encoder_training import EncoderOptions
from finetune.intent.training import (
    IntentTrainingError,
    IntentTrainingOptions,
    train_intent_classifier,
)
from finetune.nlu_data.intent_readers import LabelledUtterance
from finetune.nlu_data.public import read_public_intent_dataset
from finetune.nlu_pipeline import run_intent_training
from nlu.types import OUT_OF_SCOPE
from storage import model_registry
from storage.models import ModelKind, ModelStatus

pytestmark = pytest.mark.slow

BANKING_INTENTS = (
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "top_up_failed",
    "pin_blocked",
)
GIBBERISH = ["asdkj qwpoe zxmn", "lorem ipsum dolor sit amet", "xkcd 42 blorp", "zzz zzz zzz"]


def _slice(items, intents, per_intent):
    counts: Counter[str] = Counter()
    kept = []
    for item in items:
        if item.intent in intents and counts[item.intent] < per_intent:
            counts[item.intent] += 1
            kept.append(item)
    return kept


@pytest.fixture(scope="module")
def banking(shared_data_dir):
    splits = read_public_intent_dataset("banking77", shared_data_dir)
    return (
        _slice(splits.train, BANKING_INTENTS, 60),
        _slice(splits.validation, BANKING_INTENTS, 12),
        _slice(splits.test, BANKING_INTENTS, 25),
    )


def test_charngram_learns_a_banking_slice(banking, tmp_path):
    train, validation, test = banking

    result = train_intent_classifier(
        train, validation, test, tmp_path, IntentTrainingOptions(backend="charngram")
    )

    test_metrics = result.report["test"]
    # Five intents: chance is 0.2.
    assert test_metrics["closed_set_accuracy"] >= 0.8
    assert set(test_metrics["per_intent"]) >= set(BANKING_INTENTS)
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert result.model_dir == tmp_path / "model"
    assert json.loads((tmp_path / "model" / "nlu_model.json").read_text())["backend"] == "charngram"
    for text in GIBBERISH:
        assert result.classifier.classify(text).out_of_scope, text


def test_auto_picks_ensemble_for_english(banking, tmp_path):
    train, validation, test = banking
    options = IntentTrainingOptions(
        encoder=EncoderOptions(epochs=3, batch_size=16), in_scope_loss=0.05
    )

    result = train_intent_classifier(train, validation, test, tmp_path, options)

    assert result.report["backend"] == "ensemble"
    assert "reads the en data" in result.report["backend_reason"]
    assert 0.0 <= result.report["ensemble"]["charngram_weight"] <= 0.6
    assert result.report["test"]["closed_set_accuracy"] >= 0.8
    assert result.classifier.classify("asdkj qwpoe zxmn").out_of_scope
    assert (tmp_path / "model" / "encoder" / "config.json").is_file()
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_auto_picks_charngram_for_chinese(shared_data_dir, tmp_path):
    splits = read_public_intent_dataset("cais", shared_data_dir)
    intents = ("PlayMusic", "GetWeather", "Remind", "PlayFMStory")
    train = _slice(splits.train, intents, 80)
    test = _slice(splits.test, intents, 20)

    result = train_intent_classifier(train, [], test, tmp_path, IntentTrainingOptions())

    assert result.report["backend"] == "charngram"
    assert "unknown token" in result.report["backend_reason"]
    assert result.report["language"] == "zh-CN"
    assert result.report["test"]["closed_set_accuracy"] >= 0.75
    assert result.classifier.classify("明天北京天气怎么样").intent == "GetWeather"


def test_explicit_oos_class_from_clinc(shared_data_dir, tmp_path):
    splits = read_public_intent_dataset("clinc150", shared_data_dir)
    intents = ("balance", "transfer", "freeze_account", "pin_change", "bill_due", OUT_OF_SCOPE)
    train = _slice(splits.train, intents, 60)
    validation = _slice(splits.validation, intents, 20)
    test = _slice(splits.test, intents, 40)

    result = train_intent_classifier(
        train, validation, test, tmp_path, IntentTrainingOptions(backend="charngram")
    )

    assert result.report["explicit_oos_class"] is True
    assert OUT_OF_SCOPE in result.classifier.labels
    assert result.report["threshold"]["method"] == "oos_validation"
    assert result.report["test"]["oos_recall"] >= 0.5
    assert result.report["test"]["in_scope_accuracy"] >= 0.7


def test_single_intent_rejected(tmp_path):
    train = [LabelledUtterance(f"where is order {n}", "track", f"x.csv:{n}") for n in range(30)]

    with pytest.raises(IntentTrainingError, match="at least two"):
        train_intent_classifier(train, [], [], tmp_path)


def test_unknown_backend_rejected(banking, tmp_path):
    with pytest.raises(IntentTrainingError, match="unknown intent backend 'svm'"):
        train_intent_classifier(*banking, tmp_path, IntentTrainingOptions(backend="svm"))


def test_weaker_version_not_activated(banking, session_factory, tmp_path):
    train, validation, test = banking
    options = IntentTrainingOptions(backend="charngram", language="en")

    first = run_intent_training(
        session_factory,
        train=train,
        validation=validation,
        test=test,
        run_dir=tmp_path / "v1",
        version="intent-en-v1",
        options=options,
        data_sources={"dataset": "banking77 slice"},
    )
    # Two examples per intent make a worse model, which must not replace the first.
    weak_train = _slice(train, BANKING_INTENTS, 2)
    second = run_intent_training(
        session_factory,
        train=weak_train,
        validation=validation,
        test=test,
        run_dir=tmp_path / "v2",
        version="intent-en-v2",
        options=options,
        data_sources={"dataset": "tiny slice"},
    )

    assert first.activated
    assert first.status == ModelStatus.READY
    assert not second.activated
    assert second.status == ModelStatus.REJECTED
    assert "intent-en-v1" in second.reason
    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.INTENT, "en")
        assert active.version == "intent-en-v1"
        assert active.language == "en"
        assert active.metrics["accuracy"] == first.metrics["accuracy"]
