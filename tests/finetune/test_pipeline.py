"""The fine-tuning run end to end on a tiny model: checks, registration, promotion, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import finetune.pipeline as pipeline
from finetune.config import TrainingConfig
from finetune.disk import InsufficientDiskError, check_free_disk
from finetune.pipeline import Baseline, PipelineOptions, TooFewPairsError, run_finetune
from storage import model_registry
from storage.models import ModelKind, ModelStatus
from tests.utils.tiny_models import save_tiny_model_folder

# Questions and answers from a small vocabulary, so a word-level tiny Llama can learn
# the answers within a few dozen steps.
PAIRS = [
    ("where is my order", "it ships today"),
    ("is my order shipped", "it ships today"),
    ("when does my order ship", "it ships today"),
    ("where is my refund", "the refund takes five days"),
    ("when is the refund paid", "the refund takes five days"),
    ("how long is the refund", "the refund takes five days"),
]
WORDS = sorted({word for pair in PAIRS for text in pair for word in text.split()} | {"help"})
SYSTEM = "help"


def _write_split(path: Path, pairs: list[tuple[str, str]]) -> None:
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
        for question, answer in pairs
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_dataset(folder: Path, *, train_copies: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_split(folder / "train.jsonl", PAIRS * train_copies)
    _write_split(folder / "validation.jsonl", PAIRS[:2])
    _write_split(folder / "test.jsonl", PAIRS)
    (folder / "stats.json").write_text(json.dumps({"pairs": {"train": 24}}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    return save_tiny_model_folder(tmp_path_factory.mktemp("tiny-base"), WORDS)


def _config(tmp_path: Path, **overrides) -> TrainingConfig:
    values = dict(
        model="tiny-llama",
        dataset_dir=tmp_path / "data",
        output_dir=tmp_path / "run",
        method="full",
        learning_rate=1e-2,
        warmup_ratio=0.0,
        max_steps=40,
        per_device_batch_tokens=64,
        max_seq_len=64,
        gradient_accumulation_steps=1,
        eval_every_steps=0,
    )
    values.update(overrides)
    return TrainingConfig(**values)


def _options(**overrides) -> PipelineOptions:
    values = dict(min_train_pairs=8, eval_batch_size=4, max_new_tokens=8)
    values.update(overrides)
    return PipelineOptions(**values)


def _version(session_factory, name: str):
    with session_factory() as session:
        return model_registry.get_version(session, name)


def _active(session_factory) -> str | None:
    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
        return active.version if active else None


def _run(session_factory, tmp_path, tiny_model_path, embedder, *, version="v1", **options):
    _write_dataset(tmp_path / "data")
    return run_finetune(
        session_factory,
        _config(tmp_path),
        version=version,
        model_path=tiny_model_path,
        baseline=Baseline("base", tiny_model_path),
        embedder=embedder,
        options=_options(**options),
    )


@pytest.mark.slow
def test_winning_run_is_activated(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    outcome = _run(sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder)

    assert outcome.status == ModelStatus.READY, outcome.decision.reason
    assert outcome.activated is True
    assert _active(sqlite_session_factory) == "v1"
    version = _version(sqlite_session_factory, "v1")
    assert version.metrics["rouge_l"] > version.metrics["baseline"]["rouge_l"]
    assert version.metrics["test_pairs"] == len(PAIRS)
    assert version.data_stats == {"pairs": {"train": 24}}
    assert (Path(version.path) / "config.json").is_file()


@pytest.mark.slow
def test_run_writes_version_folder(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    outcome = _run(sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder)

    run_dir = tmp_path / "run"
    for name in ("training_config.json", "train_report.json", "data_stats.json"):
        assert (run_dir / name).is_file(), name
    assert outcome.report.markdown.is_file()
    assert outcome.report.json.is_file()
    assert list(run_dir.glob("checkpoint-*")) == []


@pytest.mark.slow
def test_no_activation_when_disabled(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    outcome = _run(
        sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder, activate=False
    )

    assert outcome.status == ModelStatus.READY
    assert outcome.activated is False
    assert _active(sqlite_session_factory) is None


@pytest.mark.slow
def test_losing_run_is_rejected(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    # A gain of 2.0 in ROUGE-L, whose range is 0 to 1, cannot be reached.
    outcome = _run(
        sqlite_session_factory,
        tmp_path,
        tiny_model_path,
        packaged_embedder,
        min_rouge_l_gain=2.0,
    )

    assert outcome.status == ModelStatus.REJECTED
    assert outcome.activated is False
    assert "below the required" in outcome.decision.reason
    assert _active(sqlite_session_factory) is None


@pytest.mark.slow
def test_losing_run_activated_by_force(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    outcome = _run(
        sqlite_session_factory,
        tmp_path,
        tiny_model_path,
        packaged_embedder,
        min_rouge_l_gain=2.0,
        force=True,
    )

    assert outcome.status == ModelStatus.REJECTED
    assert outcome.activated is True
    assert _active(sqlite_session_factory) == "v1"


def test_too_few_pairs_names_counts(sqlite_session_factory, tmp_path, tiny_model_path):
    _write_dataset(tmp_path / "data", train_copies=1)

    with pytest.raises(TooFewPairsError, match="has 6 training pairs .* at least 50"):
        run_finetune(
            sqlite_session_factory,
            _config(tmp_path),
            version="v1",
            model_path=tiny_model_path,
            baseline=Baseline("base", tiny_model_path),
            embedder=None,
            options=_options(min_train_pairs=50),
        )
    with sqlite_session_factory() as session:
        assert model_registry.list_versions(session) == []


def test_empty_test_split_rejected(sqlite_session_factory, tmp_path, tiny_model_path):
    data = _write_dataset(tmp_path / "data")
    (data / "test.jsonl").write_text("", encoding="utf-8")

    with pytest.raises(TooFewPairsError, match="no test pair"):
        run_finetune(
            sqlite_session_factory,
            _config(tmp_path),
            version="v1",
            model_path=tiny_model_path,
            baseline=Baseline("base", tiny_model_path),
            embedder=None,
            options=_options(),
        )


def test_not_enough_disk_stops_before_training(
    sqlite_session_factory, tmp_path, tiny_model_path, monkeypatch
):
    _write_dataset(tmp_path / "data")
    # More bytes than any disk has, so the real free-space check fails.
    monkeypatch.setattr(pipeline, "estimate_run_bytes", lambda *_args: 10**18)

    with pytest.raises(InsufficientDiskError, match="not enough disk space"):
        run_finetune(
            sqlite_session_factory,
            _config(tmp_path),
            version="v1",
            model_path=tiny_model_path,
            baseline=Baseline("base", tiny_model_path),
            embedder=None,
            options=_options(),
        )
    assert not (tmp_path / "run").exists()
    with sqlite_session_factory() as session:
        assert model_registry.list_versions(session) == []


def test_free_disk_check_names_folder(tmp_path):
    with pytest.raises(InsufficientDiskError, match=str(tmp_path)):
        check_free_disk(tmp_path / "missing" / "run", 10**18)


@pytest.mark.slow
def test_interrupted_run_keeps_active_model(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder, monkeypatch
):
    _run(sqlite_session_factory, tmp_path / "first", tiny_model_path, packaged_embedder)
    assert _active(sqlite_session_factory) == "v1"

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    # Stands in for Ctrl+C or SIGTERM arriving while the trainer runs.
    monkeypatch.setattr(pipeline, "train", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(
            sqlite_session_factory,
            tmp_path / "second",
            tiny_model_path,
            packaged_embedder,
            version="v2",
        )

    assert _version(sqlite_session_factory, "v2").status == ModelStatus.INTERRUPTED
    assert _active(sqlite_session_factory) == "v1"


@pytest.mark.slow
def test_interrupted_run_resumes(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder, monkeypatch
):
    real_train = pipeline.train

    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _run(sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder)
    monkeypatch.setattr(pipeline, "train", real_train)

    outcome = _run(sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder)

    assert outcome.status == ModelStatus.READY
    assert _version(sqlite_session_factory, "v1").error is None


def test_missing_model_folder_marks_failed(sqlite_session_factory, tmp_path):
    _write_dataset(tmp_path / "data")
    missing = tmp_path / "no-model"

    with pytest.raises(FileNotFoundError, match="no-model"):
        run_finetune(
            sqlite_session_factory,
            _config(tmp_path),
            version="v1",
            model_path=missing,
            baseline=Baseline("base", missing),
            embedder=None,
            options=_options(),
        )
    assert _version(sqlite_session_factory, "v1").status == ModelStatus.FAILED
    assert _active(sqlite_session_factory) is None


def test_model_without_chat_template_fails(sqlite_session_factory, tmp_path):
    _write_dataset(tmp_path / "data")
    model_path = save_tiny_model_folder(tmp_path / "no-template", WORDS)
    config_path = model_path / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_config.pop("chat_template", None)
    config_path.write_text(json.dumps(tokenizer_config), encoding="utf-8")
    for template_file in model_path.glob("chat_template.*"):
        template_file.unlink()

    with pytest.raises(ValueError, match="no chat template"):
        run_finetune(
            sqlite_session_factory,
            _config(tmp_path),
            version="v1",
            model_path=model_path,
            baseline=Baseline("base", model_path),
            embedder=None,
            options=_options(),
        )
    version = _version(sqlite_session_factory, "v1")
    assert version.status == ModelStatus.FAILED
    assert "no chat template" in version.error
    assert _active(sqlite_session_factory) is None


@pytest.mark.slow
def test_run_saves_options_for_resume(
    sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder
):
    _run(sqlite_session_factory, tmp_path, tiny_model_path, packaged_embedder, activate=False)

    options = pipeline.read_pipeline_options(tmp_path / "run")

    assert options == _options(activate=False)


def test_options_missing_for_old_run(tmp_path):
    assert pipeline.read_pipeline_options(tmp_path) is None
