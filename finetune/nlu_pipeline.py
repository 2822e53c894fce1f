"""Register, train, compare and activate intent and entity model versions.

One run of ``supportbot finetune intent`` or ``supportbot finetune ner`` registers the
version before training (status TRAINING) and saves the model and its report under the run
folder. A failed run finishes the version as FAILED, or INTERRUPTED after Ctrl+C. A trained
version is READY when no version serves its language yet, or when it scores at least as well
as the serving version on the same test data, and READY versions are activated. Otherwise it
is REJECTED and the serving version stays active. ``force`` activates a REJECTED version
anyway, and ``activate=False`` activates none.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from finetune.intent.report import evaluate_decisions, write_report
from finetune.intent.training import (
    MODEL_DIR,
    IntentTrainingOptions,
    IntentTrainingResult,
    Utterance,
    train_intent_classifier,
)
from finetune.ner.config import NerTrainingConfig
from finetune.ner.evaluation import entity_f1
from finetune.ner.train import train_tagger
from nlu.intent.classifier import load_intent_classifier
from nlu.taggers import load_tagger
from nlu.types import OUT_OF_SCOPE, TaggedSentence
from storage import model_registry
from storage.errors import ModelActivationError
from storage.models import ModelKind, ModelStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NluRunOutcome:
    """Result of a finished NLU training run and whether its version serves now.

    Attributes:
        version: The registered version name.
        status: READY or REJECTED. A failed run raises instead of returning an outcome.
        activated: Whether the version is active for its language now.
        reason: Why it was or was not activated.
        report_path: The Markdown report.
        metrics: The headline test metrics stored on the version.
    """

    version: str
    status: ModelStatus
    activated: bool
    reason: str
    report_path: Path
    metrics: dict[str, Any]


def new_nlu_version_name(
    session_factory: sessionmaker[Session], kind: ModelKind, language: str | None
) -> str:
    """Return an unused version name such as ``intent-en-20261205T013000Z``.

    Runs started in the same second get ``-2``, ``-3``... appended.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{kind.value}-{language or 'all'}-{stamp}"
    with session_factory() as session:
        taken = {
            row.version
            for row in model_registry.list_versions(session, kind)
            if row.version.startswith(base)
        }
    name, counter = base, 1
    while name in taken:
        counter += 1
        name = f"{base}-{counter}"
    return name


def run_intent_training(
    session_factory: sessionmaker[Session],
    *,
    train: Sequence[Utterance],
    validation: Sequence[Utterance],
    test: Sequence[Utterance],
    run_dir: Path,
    version: str,
    options: IntentTrainingOptions,
    data_sources: dict[str, Any],
    activate: bool = True,
    force: bool = False,
) -> NluRunOutcome:
    """Train an intent classifier as a registered version and activate it if it wins.

    Raises:
        Exception: Whatever training raises, after the version is marked FAILED (or
            INTERRUPTED) and its model folder is removed.
    """
    language = options.language
    with session_factory.begin() as session:
        model_registry.register_version(
            session,
            kind=ModelKind.INTENT,
            version=version,
            base_model=options.encoder.base_model
            if options.backend != "charngram"
            else "charngram",
            language=language,
            run_dir=str(run_dir),
            training_config=options.to_dict(),
            data_stats=data_sources,
        )

    try:
        result = train_intent_classifier(train, validation, test, run_dir, options)
        result.report["version"] = version
        return _finish_intent(
            session_factory, result, version, result.evaluation_items, activate, force
        )
    except BaseException as error:
        _finish_failed(session_factory, version, run_dir, error)
        raise


def _finish_intent(
    session_factory, result: IntentTrainingResult, version, evaluation_items, activate, force
) -> NluRunOutcome:
    report = result.report
    language = report["language"]
    metrics = _headline(report["test"])
    comparison = _compare_with_serving(session_factory, language, evaluation_items, metrics)
    report["serving_comparison"] = comparison
    _, markdown = write_report(result.model_dir.parent, report)

    status = ModelStatus.READY if comparison["wins"] else ModelStatus.REJECTED
    with session_factory.begin() as session:
        version_row = model_registry.get_version(session, version)
        # The language comes out of training when it was detected from the data.
        version_row.language = language
        if result.report["backend"] == "charngram":
            version_row.base_model = "charngram"
        model_registry.finish_version(
            session,
            version,
            status=status,
            path=str(result.model_dir),
            metrics=metrics,
            data_stats={**version_row.data_stats, **report["data"]},
        )
        activated, reason = _maybe_activate(session, version, comparison, activate, force)
    logger.info(
        "Intent version %s: %s, activated=%s (%s)", version, status.value, activated, reason
    )
    return NluRunOutcome(version, status, activated, reason, markdown, metrics)


def _headline(test_metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "examples")
    return {key: test_metrics[key] for key in keys if key in test_metrics}


def _score(metrics: dict[str, Any]) -> float:
    """Return the score that versions are compared on.

    It is the accuracy, or the mean of in-scope accuracy and OOS recall when the test data
    has out-of-scope turns.
    """
    if "oos_recall" in metrics:
        return (metrics["in_scope_accuracy"] + metrics["oos_recall"]) / 2
    return metrics["accuracy"]


def _compare_with_serving(session_factory, language, evaluation_items, metrics) -> dict[str, Any]:
    with session_factory() as session:
        serving = model_registry.get_active_version(session, ModelKind.INTENT, language)
        serving_name, serving_path = (serving.version, serving.path) if serving else (None, None)
    if serving_name is None:
        return {"serving": None, "wins": True, "reason": f"no intent model serves {language} yet"}

    try:
        classifier = load_intent_classifier(serving_path, serving_name)
    except (OSError, ValueError) as error:
        logger.warning(
            "Failed to load serving intent model %s for comparison, so the new version wins: %s",
            serving_name,
            error,
        )
        return {
            "serving": serving_name,
            "wins": True,
            "reason": f"the serving version {serving_name} cannot be loaded: {error}",
        }
    known = set(classifier.labels) | {OUT_OF_SCOPE}
    gold = [item.intent for item in evaluation_items]
    unknown = sorted(set(gold) - known)
    if unknown:
        return {
            "serving": serving_name,
            "wins": True,
            "reason": f"the serving version {serving_name} was not trained on intents of the "
            f"new data ({', '.join(unknown[:5])}), so the two cannot be compared",
        }
    decisions = [
        prediction.intent or OUT_OF_SCOPE
        for prediction in classifier.classify_many([item.text for item in evaluation_items])
    ]
    serving_metrics = _headline(evaluate_decisions(gold, decisions))
    new_score, old_score = _score(metrics), _score(serving_metrics)
    wins = new_score >= old_score
    return {
        "serving": serving_name,
        "serving_metrics": serving_metrics,
        "wins": wins,
        "reason": (
            f"score {new_score:.4f} {'>=' if wins else '<'} {old_score:.4f} of the serving "
            f"version {serving_name} on the same test data"
        ),
    }


def _maybe_activate(session, version, comparison, activate, force) -> tuple[bool, str]:
    if not activate:
        return False, "activation turned off (--no-activate)"
    if not comparison["wins"] and not force:
        return False, comparison["reason"]
    try:
        model_registry.activate_version(session, version, force=force, reason="finetune")
    except ModelActivationError as error:
        logger.warning("Activating version %s failed: %s", version, error)
        return False, str(error)
    return True, comparison["reason"] + (" (forced)" if force and not comparison["wins"] else "")


def _finish_failed(session_factory, version: str, run_dir: Path, error: BaseException) -> None:
    status = ModelStatus.INTERRUPTED if isinstance(error, KeyboardInterrupt) else ModelStatus.FAILED
    logger.error("NLU training run %s ended with %s: %s", version, status.value, error)
    with session_factory.begin() as session:
        model_registry.finish_version(session, version, status=status, error=str(error)[:2000])
    shutil.rmtree(run_dir / MODEL_DIR, ignore_errors=True)


def run_ner_training(
    session_factory: sessionmaker[Session],
    *,
    train: Sequence[TaggedSentence],
    validation: Sequence[TaggedSentence],
    test: Sequence[TaggedSentence],
    run_dir: Path,
    version: str,
    backend: str,
    language: str,
    config: NerTrainingConfig,
    data_sources: dict[str, Any],
    activate: bool = True,
    force: bool = False,
) -> NluRunOutcome:
    """Train an entity tagger as a registered version and activate it if it wins.

    ``language`` is the serving language code ("en", "zh-CN"). The tagger splits words by
    it. Without ``test`` sentences, the version is compared on ``validation``.

    Raises:
        Exception: Whatever training raises, after the version is marked FAILED (or
            INTERRUPTED) and its model folder is removed.
    """
    with session_factory.begin() as session:
        model_registry.register_version(
            session,
            kind=ModelKind.NER,
            version=version,
            base_model=config.base_model if backend == "transformer" else "crf",
            language=language,
            run_dir=str(run_dir),
            training_config={"backend": backend, **asdict(config)},
            data_stats=data_sources,
        )

    model_dir = run_dir / MODEL_DIR
    try:
        report = train_tagger(
            train,
            validation,
            model_dir,
            backend,
            language=language,
            config=config,
            test=test,
            version=version,
        )
    except BaseException as error:
        _finish_failed(session_factory, version, run_dir, error)
        raise

    evaluation = report.get("evaluation") or {}
    micro = (evaluation.get("entity") or {}).get("micro") or {}
    metrics = {
        "entity_f1": micro.get("f1"),
        "entity_precision": micro.get("precision"),
        "entity_recall": micro.get("recall"),
        "evaluated_on": report.get("evaluated_on"),
    }
    comparison = _compare_tagger_with_serving(
        session_factory, language, list(test or validation), metrics["entity_f1"]
    )
    status = ModelStatus.READY if comparison["wins"] else ModelStatus.REJECTED
    with session_factory.begin() as session:
        model_registry.finish_version(
            session,
            version,
            status=status,
            path=str(model_dir),
            metrics=metrics,
            data_stats={
                **data_sources,
                "train": len(train),
                "validation": len(validation),
                "test": len(test),
            },
        )
        activated, reason = _maybe_activate(session, version, comparison, activate, force)
    logger.info(
        "Entity version %s: %s, activated=%s (%s)", version, status.value, activated, reason
    )
    return NluRunOutcome(version, status, activated, reason, model_dir / "eval_report.md", metrics)


def _compare_tagger_with_serving(session_factory, language, sentences, new_f1) -> dict[str, Any]:
    with session_factory() as session:
        serving = model_registry.get_active_version(session, ModelKind.NER, language)
        serving_name, serving_path = (serving.version, serving.path) if serving else (None, None)
    if serving_name is None:
        return {"serving": None, "wins": True, "reason": f"no entity model serves {language} yet"}
    if not sentences or new_f1 is None:
        return {
            "serving": serving_name,
            "wins": True,
            "reason": "no evaluation data to compare with the serving version",
        }
    try:
        tagger = load_tagger(serving_path, version=serving_name)
        predictions = tagger.tag_words([sentence.words for sentence in sentences])
    except (OSError, ValueError) as error:
        logger.warning(
            "Failed to run serving entity model %s for comparison, so the new version wins: %s",
            serving_name,
            error,
        )
        return {
            "serving": serving_name,
            "wins": True,
            "reason": f"the serving version {serving_name} cannot be used: {error}",
        }
    old_f1 = entity_f1(
        [sentence.tags for sentence in sentences], [prediction.tags for prediction in predictions]
    )
    wins = new_f1 >= old_f1
    return {
        "serving": serving_name,
        "wins": wins,
        "reason": (
            f"entity F1 {new_f1:.4f} {'>=' if wins else '<'} {old_f1:.4f} of the serving "
            f"version {serving_name} on the same test data"
        ),
    }
