"""One fine-tuning run from a dataset to a registered, evaluated and maybe active version.

``run_finetune`` reads top to bottom: check the data and the disk → register the
version → train → evaluate the candidate and the model it would replace on the same
test pairs → write the report → record the outcome → activate when the candidate wins.
A run that fails or is interrupted is recorded with that status and never activated,
so the model that serves stays as it was.

Example:
    >>> outcome = run_finetune(session_factory, config, version="dialog-20261204T230000Z",
    ...                        model_path=base_path, baseline=Baseline("base", base_path),
    ...                        embedder=embedder)
    >>> outcome.status, outcome.activated
    (<ModelStatus.READY: 'ready'>, True)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from finetune.config import TrainingConfig
from finetune.dataset import STATS_FILE
from finetune.disk import check_free_disk, estimate_run_bytes
from finetune.eval_report import ReportFiles, write_report
from finetune.evaluation import ModelScores, compare, evaluate_model, read_test_examples
from finetune.pairs import TextEmbedder
from finetune.promotion import DEFAULT_MIN_ROUGE_L_GAIN, PromotionDecision, decide_promotion
from finetune.trainer import CONFIG_FILE, REPORT_FILE, TRAIN_FILE, TrainingResult, train
from storage import model_registry
from storage.errors import NotFoundError
from storage.models import ModelKind, ModelStatus

logger = logging.getLogger(__name__)

DATA_STATS_FILE = "data_stats.json"
# Checks, evaluation and promotion options of a run, reused when it resumes.
OPTIONS_FILE = "pipeline_options.json"
TEST_FILE = "test.jsonl"
# A guess, not a measured limit: with fewer pairs a run mostly learns noise.
DEFAULT_MIN_TRAIN_PAIRS = 16


class TooFewPairsError(ValueError):
    """The dataset has fewer training or test pairs than a run needs."""


@dataclass(frozen=True)
class Baseline:
    """The model a candidate is compared with: the active version or the base model.

    Attributes:
        name: Registry version name, or "base".
        model_path: Local folder that from_pretrained loads.
    """

    name: str
    model_path: Path


@dataclass(frozen=True)
class PipelineOptions:
    """Checks, evaluation size and promotion of a run.

    Attributes:
        min_train_pairs: Fewest training pairs accepted.
        eval_limit: Test pairs evaluated, first ones of test.jsonl; None evaluates all.
        eval_batch_size: Test prompts generated at once.
        max_new_tokens: Longest generated answer in the evaluation, in tokens.
        activate: Activate the candidate when it beats the baseline.
        force: Activate the candidate even when it does not beat the baseline.
        min_rouge_l_gain: ROUGE-L gain over the baseline that promotion needs.
        keep_checkpoints: Keep checkpoint folders after a successful run.
    """

    min_train_pairs: int = DEFAULT_MIN_TRAIN_PAIRS
    eval_limit: int | None = 100
    eval_batch_size: int = 8
    max_new_tokens: int = 96
    activate: bool = True
    force: bool = False
    min_rouge_l_gain: float = DEFAULT_MIN_ROUGE_L_GAIN
    keep_checkpoints: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """Result of a finished run."""

    version: str
    status: ModelStatus
    activated: bool
    decision: PromotionDecision
    report: ReportFiles
    training: TrainingResult


def read_pipeline_options(run_dir: Path) -> PipelineOptions | None:
    """Return the options a run in ``run_dir`` started with, or None if it saved none."""
    path = run_dir / OPTIONS_FILE
    if not path.is_file():
        return None
    return PipelineOptions(**json.loads(path.read_text(encoding="utf-8")))


def new_version_name(kind: ModelKind = ModelKind.DIALOG) -> str:
    """Return a version name from the kind and the current UTC time."""
    return f"{kind.value}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def run_finetune(
    session_factory: sessionmaker[Session],
    config: TrainingConfig,
    *,
    version: str,
    model_path: Path,
    baseline: Baseline,
    embedder: TextEmbedder,
    options: PipelineOptions | None = None,
) -> RunOutcome:
    """Train, evaluate and register one dialog model version; activate it if it wins.

    ``config.output_dir`` is the version folder. When the version is registered
    already with status INTERRUPTED or FAILED, the run resumes from its last checkpoint.

    Args:
        session_factory: Sessions of the database with the model registry.
        config: Training settings; ``config.dataset_dir`` contains the JSONL splits.
        version: Name under which the model is registered.
        model_path: Local folder of the model to fine-tune.
        baseline: Model that serves now, compared with the candidate.
        embedder: Embeds answers for the embedding similarity metric.
        options: Checks, evaluation size and promotion; None uses the defaults.

    Returns:
        The version's status, whether it was activated and the report files.

    Raises:
        TooFewPairsError: If there are fewer training pairs than needed or no test pair.
        finetune.disk.InsufficientDiskError: If the disk cannot hold the checkpoints.
        FileNotFoundError: If the model folder or a dataset file is missing.
        ValueError: If the model has no chat template or the data is invalid.
        KeyboardInterrupt: If the run is interrupted; the version is marked INTERRUPTED.
    """
    options = options or PipelineOptions()
    train_pairs, test_pairs = _check_pairs(config.dataset_dir, options)
    check_free_disk(config.output_dir, estimate_run_bytes(model_path, config.method))
    data_stats = _read_data_stats(config.dataset_dir)
    _register_or_resume(session_factory, config, version, data_stats, options)
    logger.info(
        "Fine-tuning run %s started: %d training pairs, %d test pairs, output %s",
        version,
        train_pairs,
        test_pairs,
        config.output_dir,
    )

    try:
        training = train(config, model_path=model_path)
        examples = read_test_examples(config.dataset_dir / TEST_FILE, limit=options.eval_limit)
        candidate_scores = _evaluate(training.model_dir, examples, embedder, version, options)
        baseline_scores = _evaluate(baseline.model_path, examples, embedder, baseline.name, options)
        comparison = compare(candidate_scores, baseline_scores)
        train_report = json.loads((config.output_dir / REPORT_FILE).read_text(encoding="utf-8"))
        report = write_report(
            config.output_dir, comparison, train_report=train_report, dataset_stats=data_stats
        )
    except KeyboardInterrupt:
        _record_failure(session_factory, version, ModelStatus.INTERRUPTED, "interrupted")
        raise
    except Exception as error:
        _record_failure(session_factory, version, ModelStatus.FAILED, str(error))
        raise

    decision = decide_promotion(
        candidate_scores, baseline_scores, min_rouge_l_gain=options.min_rouge_l_gain
    )
    status = ModelStatus.READY if decision.promote else ModelStatus.REJECTED
    metrics = _metrics(candidate_scores, baseline_scores, training, decision, len(examples))
    activated = False
    with session_factory.begin() as session:
        model_registry.finish_version(
            session, version, status=status, path=str(training.model_dir), metrics=metrics
        )
        if (decision.promote and options.activate) or options.force:
            model_registry.activate_version(
                session, version, force=options.force, reason="fine-tune run"
            )
            activated = True

    if not options.keep_checkpoints:
        _remove_checkpoints(config.output_dir)
    logger.info(
        "Fine-tuning run %s finished: status=%s activated=%s (%s)",
        version,
        status.value,
        activated,
        decision.reason,
    )
    return RunOutcome(version, status, activated, decision, report, training)


def _check_pairs(dataset_dir: Path, options: PipelineOptions) -> tuple[int, int]:
    train_pairs = _count_lines(dataset_dir / TRAIN_FILE)
    if train_pairs < options.min_train_pairs:
        raise TooFewPairsError(
            f"dataset {dataset_dir} has {train_pairs} training pairs and a run needs at least "
            f"{options.min_train_pairs}: import more conversations, widen the selection "
            "(--from, --to, --channel) or lower --min-pairs"
        )
    test_pairs = _count_lines(dataset_dir / TEST_FILE)
    if test_pairs == 0:
        raise TooFewPairsError(
            f"dataset {dataset_dir} has no test pair, so the new model cannot be compared "
            "with the one that serves: rebuild the dataset with a larger --test share"
        )
    return train_pairs, test_pairs


def _count_lines(path: Path) -> int:
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset file {path} is missing: write the dataset with "
            "'supportbot finetune dataset' or point --dataset at the folder that has it"
        )
    with path.open(encoding="utf-8") as file:
        return sum(1 for line in file if line.strip())


def _read_data_stats(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / STATS_FILE
    if not path.is_file():
        logger.warning("dataset %s has no %s, so the version has no data stats", dataset_dir, path)
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _register_or_resume(
    session_factory: sessionmaker[Session],
    config: TrainingConfig,
    version: str,
    data_stats: dict[str, Any],
    options: PipelineOptions,
) -> None:
    config.output_dir.mkdir(parents=True, exist_ok=True)
    (config.output_dir / OPTIONS_FILE).write_text(
        json.dumps(dataclasses.asdict(options), indent=2) + "\n", encoding="utf-8"
    )
    config.to_json(config.output_dir / CONFIG_FILE)
    (config.output_dir / DATA_STATS_FILE).write_text(
        json.dumps(data_stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    training_config = json.loads((config.output_dir / CONFIG_FILE).read_text(encoding="utf-8"))

    with session_factory.begin() as session:
        try:
            existing = model_registry.get_version(session, version)
        except NotFoundError:
            model_registry.register_version(
                session,
                kind=ModelKind.DIALOG,
                version=version,
                base_model=config.model,
                run_dir=str(config.output_dir),
                training_config=training_config,
                data_stats=data_stats,
            )
            return
        model_registry.restart_version(session, existing.version)
        logger.info(
            "Restarting model version %s; training continues from its last checkpoint if any",
            version,
        )


def _record_failure(
    session_factory: sessionmaker[Session], version: str, status: ModelStatus, error: str
) -> None:
    logger.error("Fine-tuning run %s ended with status %s: %s", version, status.value, error)
    with session_factory.begin() as session:
        model_registry.finish_version(session, version, status=status, error=error)


def _evaluate(
    model_path: Path,
    examples: list[Any],
    embedder: TextEmbedder,
    name: str,
    options: PipelineOptions,
) -> ModelScores:
    return evaluate_model(
        model_path,
        examples,
        embedder=embedder,
        name=name,
        max_new_tokens=options.max_new_tokens,
        batch_size=options.eval_batch_size,
    )


def _metrics(
    candidate: ModelScores,
    baseline: ModelScores,
    training: TrainingResult,
    decision: PromotionDecision,
    test_pairs: int,
) -> dict[str, Any]:
    def scores(model: ModelScores) -> dict[str, Any]:
        return {
            "name": model.name,
            "perplexity": model.perplexity,
            "rouge_l": model.rouge_l,
            "token_f1": model.token_f1,
            "embedding_similarity": model.embedding_similarity,
        }

    eval_losses = [loss for _, loss in training.eval_loss_history]
    return {
        **{key: value for key, value in scores(candidate).items() if key != "name"},
        "test_pairs": test_pairs,
        "baseline": scores(baseline),
        "decision": decision.reason,
        "steps": training.steps,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "answer_tokens_per_s": training.answer_tokens_per_s,
    }


def _remove_checkpoints(output_dir: Path) -> None:
    for checkpoint in output_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    logger.info("Removed checkpoints of %s", output_dir)
