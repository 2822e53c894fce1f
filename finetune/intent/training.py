"""Train an intent classifier end to end: backend choice, fit, calibration, threshold, report.

Steps, in order:

1. Hold out validation data when none is given.
2. Pick the backend. ``auto`` picks the ensemble of encoder and character n-gram model when
   the encoder's tokenizer can read the data, and the n-gram model alone otherwise.
3. Fit the model.
4. Fit the temperature and choose the out-of-scope threshold, on validation data only.
5. Evaluate on the test turns, or on the validation turns when there are none.
6. Save the model folder with its manifest, and the confusion matrix plot. The caller
   writes the returned report.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.model_selection import train_test_split

from finetune.intent.encoder_training import (
    EncoderOptions,
    train_encoder_model,
    unknown_token_share,
)
from finetune.intent.report import PLOT_NAME, evaluate_decisions, plot_confusion_matrix
from nlu.intent.calibration import expected_calibration_error, fit_temperature, softmax
from nlu.intent.charngram import CharNgramIntentModel, CharNgramOptions
from nlu.intent.classifier import IntentClassifier
from nlu.intent.ensemble import EnsembleIntentModel, combine
from nlu.intent.threshold import (
    DEFAULT_IN_SCOPE_LOSS,
    DEFAULT_MAX_IN_SCOPE_DROP,
    choose_threshold,
    decide,
)
from nlu.types import OUT_OF_SCOPE
from retrieval.language import detect_majority_language

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "charngram", "encoder", "ensemble", "compare")
# Weights of the n-gram model tried when an ensemble is fitted on validation data.
ENSEMBLE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
MODEL_DIR = "model"


class Utterance(Protocol):
    """Labelled turn, such as ``finetune.nlu_data.intent_readers.LabelledUtterance``."""

    text: str
    intent: str


class IntentTrainingError(ValueError):
    """Invalid data or options for intent training. The message names what to change."""


@dataclass(frozen=True)
class IntentTrainingOptions:
    """Choices of one intent training run.

    Attributes:
        backend: ``auto`` (``ensemble`` when the encoder's tokenizer reads the data,
            ``charngram`` otherwise), ``charngram``, ``encoder``, ``ensemble`` (both, their
            votes weighted on validation) or ``compare`` (train ``charngram`` and
            ``encoder``, keep the one with the better in-scope validation accuracy).
        encoder: Fine-tuning settings of the encoder backend.
        charngram: Features of the character n-gram backend.
        explicit_oos: Whether to train an ``oos`` class from out-of-scope training turns.
            None trains one when the training data has such turns.
        validation_share: Share of training turns held out when no validation data is
            given, in (0, 0.5).
        in_scope_loss: Without out-of-scope validation turns, the share of correct turns
            that may fall under the threshold.
        max_in_scope_drop: With out-of-scope validation turns, the in-scope accuracy the
            threshold may cost (0.01 is one point); the most out-of-scope turns are
            recognised within it.
        max_unknown_share: Maximum share of the data's tokens that the encoder's tokenizer
            may map to its unknown token before ``auto`` picks ``charngram``.
        language: The language the model serves; None detects it from the training text.
        seed: Seed of the validation split and of training.

    Raises:
        IntentTrainingError: If ``backend`` is unknown or ``validation_share`` is outside
            (0, 0.5).
    """

    backend: str = "auto"
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    charngram: CharNgramOptions = field(default_factory=CharNgramOptions)
    explicit_oos: bool | None = None
    validation_share: float = 0.1
    in_scope_loss: float = DEFAULT_IN_SCOPE_LOSS
    max_in_scope_drop: float = DEFAULT_MAX_IN_SCOPE_DROP
    max_unknown_share: float = 0.2
    language: str | None = None
    seed: int = 42

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise IntentTrainingError(
                f"unknown intent backend {self.backend!r}: use one of {', '.join(BACKENDS)}"
            )
        if not 0.0 < self.validation_share < 0.5:
            raise IntentTrainingError(
                f"validation_share must be in (0, 0.5), got {self.validation_share}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


@dataclass
class IntentTrainingResult:
    """A trained classifier, where it was saved, its report and the turns it was tested on."""

    classifier: IntentClassifier
    model_dir: Path
    report: dict[str, Any]
    evaluation_items: list[Utterance] = field(default_factory=list)


def train_intent_classifier(
    train: Sequence[Utterance],
    validation: Sequence[Utterance],
    test: Sequence[Utterance],
    out_dir: Path,
    options: IntentTrainingOptions | None = None,
) -> IntentTrainingResult:
    """Train, calibrate, evaluate and save an intent classifier.

    Args:
        train: Labelled training turns; ``oos`` marks out-of-scope turns.
        validation: Turns for calibration and the threshold. If empty, a share of
            ``train`` is held out.
        test: Turns for the report. If empty, the report evaluates the validation turns and
            sets ``data.test_source`` to ``validation``.
        out_dir: Folder of the run. The model goes to ``out_dir/model`` and the confusion
            matrix plot into ``out_dir``.
        options: Choices of the run.

    Returns:
        The classifier, its model folder, the report (not yet written) and the turns it
        was evaluated on.

    Raises:
        IntentTrainingError: If the data or options cannot train a classifier.
        EncoderLoadError: If an encoder backend is chosen and the encoder cannot be loaded.
    """
    options = options or IntentTrainingOptions()
    if options.backend not in BACKENDS:
        raise IntentTrainingError(
            f"unknown intent backend {options.backend!r}: use one of {', '.join(BACKENDS)}"
        )
    started = time.perf_counter()
    train, validation = _with_validation(list(train), list(validation), options)
    explicit_oos = _uses_explicit_oos(train, options)
    fit_items = [item for item in train if explicit_oos or item.intent != OUT_OF_SCOPE]
    classes = sorted({item.intent for item in fit_items})
    in_scope_classes = [name for name in classes if name != OUT_OF_SCOPE]
    if len(in_scope_classes) < 2:
        raise IntentTrainingError(
            f"the training data has {len(in_scope_classes)} intent(s) "
            f"({', '.join(in_scope_classes) or 'none'}); a classifier needs at least two"
        )

    texts = [item.text for item in fit_items]
    language = options.language or detect_majority_language(texts)
    logger.info(
        "Training intent classifier: %d turns, %d intents, language %s, explicit OOS %s",
        len(fit_items),
        len(in_scope_classes),
        language,
        explicit_oos,
    )

    backend, reason = _choose_backend(texts, language, options)
    if backend == "compare":
        model, backend_reason, comparison = _compare_backends(
            fit_items, validation, classes, options
        )
    else:
        model = _fit(backend, fit_items, validation, classes, options)
        backend_reason, comparison = reason, None
    training_seconds = time.perf_counter() - started

    classifier, calibration = _calibrate(model, validation, language, options)
    evaluation_items, test_source = (test, "test split") if test else (validation, "validation")
    predictions = classifier.classify_many([item.text for item in evaluation_items])
    decisions = [prediction.intent or OUT_OF_SCOPE for prediction in predictions]
    closed_set = [_best_in_scope(prediction) for prediction in predictions]
    gold = [item.intent for item in evaluation_items]
    test_metrics = evaluate_decisions(gold, decisions, closed_set)

    model_dir = out_dir / MODEL_DIR
    report = {
        "backend": model.backend,
        "backend_reason": backend_reason,
        "backend_comparison": comparison,
        "ensemble": model.manifest() if isinstance(model, EnsembleIntentModel) else None,
        "language": language,
        "explicit_oos_class": explicit_oos,
        "temperature": classifier.temperature,
        "threshold": calibration["threshold"],
        "validation": calibration["validation"],
        "training_seconds": round(training_seconds, 1),
        "data": {
            "train": len(fit_items),
            "validation": len(validation),
            "test": len(evaluation_items),
            "test_source": test_source,
            "intents": len(in_scope_classes),
            "train_oos": sum(item.intent == OUT_OF_SCOPE for item in train),
            "test_oos": sum(label == OUT_OF_SCOPE for label in gold),
        },
        "options": options.to_dict(),
        "test": test_metrics,
    }
    classifier.save(
        model_dir,
        base_model=options.encoder.base_model if model.backend != "charngram" else None,
        max_length=options.encoder.max_length,
    )
    plot_confusion_matrix(gold, decisions, out_dir / PLOT_NAME)
    logger.info(
        "Trained intent classifier in %.0f s: test accuracy %.4f, macro F1 %.4f",
        time.perf_counter() - started,
        test_metrics["accuracy"],
        test_metrics["macro_f1"],
    )
    return IntentTrainingResult(classifier, model_dir, report, list(evaluation_items))


def _best_in_scope(prediction) -> str:
    for name, _ in prediction.ranking:
        if name != OUT_OF_SCOPE:
            return name
    return OUT_OF_SCOPE


def _with_validation(train, validation, options):
    if validation:
        return train, validation
    if len(train) < 20:
        raise IntentTrainingError(
            f"{len(train)} training turns are too few to hold out validation data: pass "
            "--validation FILE or give at least 20 labelled training turns"
        )
    counts = Counter(item.intent for item in train)
    stratify = [item.intent for item in train] if min(counts.values()) >= 2 else None
    kept, held_out = train_test_split(
        train, test_size=options.validation_share, random_state=options.seed, stratify=stratify
    )
    logger.info("Held out %d of %d training turns for validation", len(held_out), len(train))
    return list(kept), list(held_out)


def _uses_explicit_oos(train, options) -> bool:
    has_oos = any(item.intent == OUT_OF_SCOPE for item in train)
    if options.explicit_oos is None:
        return has_oos
    if options.explicit_oos and not has_oos:
        raise IntentTrainingError(
            f"an explicit out-of-scope class needs training turns labelled {OUT_OF_SCOPE!r}; "
            "the training data has none"
        )
    return options.explicit_oos


def _choose_backend(texts, language, options) -> tuple[str, str]:
    if options.backend != "auto":
        return options.backend, f"chosen with --backend {options.backend}"
    try:
        share = unknown_token_share(texts, options.encoder.base_model)
    except Exception as error:  # noqa: BLE001 - any load failure rules the encoder out
        logger.warning(
            "Failed to load the tokenizer of encoder %s, so backend auto picks charngram: %s. "
            "Fix --base-model or pass --backend charngram",
            options.encoder.base_model,
            error,
        )
        return "charngram", f"the encoder {options.encoder.base_model} could not be loaded"
    if share > options.max_unknown_share:
        return "charngram", (
            f"the encoder's tokenizer maps {share:.0%} of the {language} tokens to its "
            f"unknown token (limit {options.max_unknown_share:.0%})"
        )
    return "ensemble", f"the encoder's tokenizer reads the {language} data ({share:.1%} unknown)"


def _fit(backend, items, validation, classes, options):
    texts = [item.text for item in items]
    labels = [item.intent for item in items]
    if backend == "charngram":
        return CharNgramIntentModel.fit(texts, labels, options.charngram)
    if backend == "encoder":
        return train_encoder_model(texts, labels, classes, options.encoder)
    return _fit_ensemble(
        train_encoder_model(texts, labels, classes, options.encoder),
        CharNgramIntentModel.fit(texts, labels, options.charngram),
        validation,
    )


def _fit_ensemble(encoder, charngram, validation) -> EnsembleIntentModel:
    """Calibrate each member on validation and pick the n-gram weight that classifies best."""
    index = {name: position for position, name in enumerate(encoder.labels)}
    rows = [row for row, item in enumerate(validation) if item.intent in index]
    texts = [validation[row].text for row in rows]
    targets = np.array([index[validation[row].intent] for row in rows], dtype=int)
    encoder_scores = encoder.scores(texts)
    charngram_scores = charngram.scores(texts)
    encoder_temperature = fit_temperature(encoder_scores, targets)
    charngram_temperature = fit_temperature(charngram_scores, targets)

    accuracy: dict[float, float] = {}
    for weight in ENSEMBLE_WEIGHTS:
        combined = combine(
            encoder_scores,
            charngram_scores,
            weight=weight,
            encoder_temperature=encoder_temperature,
            charngram_temperature=charngram_temperature,
        )
        accuracy[weight] = float((combined.argmax(axis=1) == targets).mean()) if rows else 0.0
    # Ties go to the smaller weight, the model closer to the encoder alone.
    best = max(ENSEMBLE_WEIGHTS, key=lambda weight: (accuracy[weight], -weight))
    logger.info(
        "Ensemble weight of the n-gram model: %.1f (validation accuracy %s)",
        best,
        ", ".join(f"{weight:.1f}: {value:.4f}" for weight, value in accuracy.items()),
    )
    return EnsembleIntentModel(
        encoder,
        charngram,
        charngram_weight=best,
        encoder_temperature=encoder_temperature,
        charngram_temperature=charngram_temperature,
    )


def _compare_backends(items, validation, classes, options):
    accuracy: dict[str, float] = {}
    models = {}
    gold = [item.intent for item in validation]
    in_scope = [index for index, label in enumerate(gold) if label != OUT_OF_SCOPE]
    for backend in ("charngram", "encoder"):
        model = _fit(backend, items, validation, classes, options)
        # Raw scores can be negative, and decide() would count a negative best score as
        # under threshold 0. The softmax keeps the ranking and makes every score positive.
        probabilities = softmax(model.scores([item.text for item in validation]))
        decisions, _ = decide(probabilities, model.labels, 0.0)
        accuracy[backend] = float(np.mean([decisions[index] == gold[index] for index in in_scope]))
        models[backend] = model

    winner = max(accuracy, key=accuracy.get)
    others = ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items() if name != winner)
    reason = f"higher in-scope validation accuracy: {winner} {accuracy[winner]:.4f} vs {others}"
    logger.info("Backend comparison: %s", reason)
    return models[winner], reason, accuracy


def _calibrate(model, validation, language, options):
    """Fit the temperature and threshold on ``validation`` and return the classifier."""
    labels = list(model.labels)
    index = {name: position for position, name in enumerate(labels)}
    scores = model.scores([item.text for item in validation])
    known = [row for row, item in enumerate(validation) if item.intent in index]
    targets = np.array([index[validation[row].intent] for row in known], dtype=int)
    temperature = fit_temperature(scores[known], targets)

    classifier = IntentClassifier(model, temperature=temperature, language=language)
    probabilities = classifier.probabilities([item.text for item in validation])
    gold = [item.intent for item in validation]
    choice = choose_threshold(
        probabilities,
        labels,
        gold,
        in_scope_loss=options.in_scope_loss,
        max_in_scope_drop=options.max_in_scope_drop,
    )
    classifier.threshold = choice.threshold

    decisions, confidence = decide(probabilities, labels, 0.0)
    correct = np.asarray(decisions) == np.asarray(gold)
    in_scope = np.asarray(gold) != OUT_OF_SCOPE
    calibration = {
        "threshold": choice.to_dict(),
        "validation": {
            "examples": len(validation),
            "accuracy_without_threshold": round(float(correct[in_scope].mean()), 4),
            "expected_calibration_error": round(
                expected_calibration_error(confidence[in_scope], correct[in_scope]), 4
            ),
        },
    }
    return classifier, calibration
