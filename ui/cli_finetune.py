"""``supportbot finetune``: build datasets, train, evaluate and register dialog models."""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ui.cli_support import check_paths_exist, fail, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.config import Settings
    from finetune.build import DatasetConfig
    from finetune.config import TrainingConfig
    from finetune.dataset import DatasetStats
    from finetune.pipeline import Baseline
    from retrieval.embedder import SentenceTransformerEmbedder

logger = logging.getLogger(__name__)

finetune_app = typer.Typer(
    help=(
        "Fine-tuning of the dialog model: 'run' does everything; 'dataset' and 'train' "
        "are its first steps on their own."
    ),
    no_args_is_help=True,
)

# Options shared by `finetune dataset` and `finetune run`.
CreatedFromOption = Annotated[
    datetime | None, typer.Option("--from", help="Conversations created at or after (UTC).")
]
CreatedToOption = Annotated[
    datetime | None, typer.Option("--to", help="Conversations created before (UTC).")
]
ChannelOption = Annotated[
    list[str] | None, typer.Option(help="Only these channels; repeat for several.")
]
StatusOption = Annotated[
    list[str] | None, typer.Option(help="Only these statuses (bot, waiting, agent, closed).")
]
MinRatingOption = Annotated[
    int | None,
    typer.Option(min=1, max=5, help="Only conversations rated at least this (1-5)."),
]
ValidationOption = Annotated[float, typer.Option(help="Share of conversations for validation.")]
TestOption = Annotated[float, typer.Option(help="Share of conversations for test.")]
DialogsOption = Annotated[
    list[Path] | None,
    typer.Option(
        help="Read conversations from these dialog files instead of storage; repeat for "
        "several. Any format of import-dialogs; nothing is stored."
    ),
]


@finetune_app.command("dataset")
def finetune_dataset(
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder; default <home>/finetune/datasets/<UTC time>."),
    ] = None,
    created_from: CreatedFromOption = None,
    created_to: CreatedToOption = None,
    channel: ChannelOption = None,
    status: StatusOption = None,
    min_rating: MinRatingOption = None,
    context_turns: Annotated[int, typer.Option(min=0, help="Earlier turns per pair.")] = 4,
    validation: ValidationOption = 0.1,
    test: TestOption = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 42,
    duplicate_similarity: Annotated[
        float,
        typer.Option(help="Cosine from which questions count as duplicates; 1 disables merging."),
    ] = 0.9,
    dialogs: DialogsOption = None,
) -> None:
    """Build redacted (context, question -> answer) pairs as train/validation/test JSONL."""
    settings = load_settings()
    from bot.runtime import build_embedder, open_database
    from finetune.build import DatasetConfig
    from finetune.pairs import ConversationFilter
    from storage.errors import StorageError

    try:
        conversation_filter = ConversationFilter(
            created_from=created_from,
            created_to=created_to,
            channels=tuple(channel or ()),
            statuses=tuple(status or ()),
            min_rating=min_rating,
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        config = DatasetConfig(
            out_dir=out or settings.home / "finetune" / "datasets" / stamp,
            conversation_filter=conversation_filter,
            context_turns=context_turns,
            validation=validation,
            test=test,
            seed=seed,
            duplicate_similarity=duplicate_similarity,
        )
    except ValueError as error:
        raise fail(f"Invalid selection: {error}", code=2) from error

    if dialogs:
        check_paths_exist(dialogs, "Dialog file")
    engine, session_factory = (None, None) if dialogs else open_database(settings)
    try:
        embedder = build_embedder(settings) if duplicate_similarity < 1.0 else None
        stats = _write_dataset(
            config, dialogs=dialogs, session_factory=session_factory, embedder=embedder
        )
    except (ValueError, OSError, StorageError) as error:
        raise fail(f"Building the dataset failed: {error}") from error
    finally:
        if engine is not None:
            engine.dispose()
    typer.echo(
        f"Wrote {config.out_dir}: pairs {stats.pairs}, duplicates removed "
        f"{stats.duplicates_removed}, dropped {stats.dropped}, redacted {stats.redactions}."
    )


@finetune_app.command("train")
def finetune_train(
    dataset: Annotated[Path, typer.Argument(help="Folder written by `finetune dataset`.")],
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder; default <home>/finetune/runs/<UTC time>."),
    ] = None,
    method: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Epochs when --max-steps is not given.")] = 3.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    max_seq_len: Annotated[int, typer.Option(help="Longest example in tokens.")] = 1024,
    batch_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens per row or batch and device; default 4096 on CUDA, 1024 on CPU."),
    ] = None,
    batching: Annotated[
        str | None,
        typer.Option(help="packed or length_grouped; default packed on CUDA, else length_grouped."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the run.")] = 42,
) -> None:
    """Fine-tune the configured dialog model on a dataset; the model is not activated."""
    settings = load_settings()
    from bot.generation.base import GenerationError
    from bot.generation.model_cache import resolve_model_path
    from finetune.config import TrainingConfig
    from finetune.distributed import launched_world_size
    from finetune.trainer import train

    # Each process would name its own folder from its own clock.
    if out is None and launched_world_size() > 1:
        raise fail("Training with several processes needs --out: give the run folder.", code=2)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        model_path = resolve_model_path(settings.generation.model, settings.model_cache_dir)
        config = TrainingConfig(
            model=settings.generation.model,
            dataset_dir=dataset,
            output_dir=out or settings.home / "finetune" / "runs" / stamp,
            method=method,
            max_steps=max_steps,
            num_epochs=epochs,
            learning_rate=learning_rate,
            max_seq_len=max_seq_len,
            per_device_batch_tokens=batch_tokens or _default_batch_tokens(),
            batching=batching or _default_batching(),
            seed=seed,
        )
        result = train(config, model_path=model_path)
    except (GenerationError, ValueError, OSError) as error:
        raise fail(f"Fine-tuning failed: {error}") from error
    if os.environ.get("RANK", "0") != "0":
        return
    typer.echo(
        f"Trained {result.steps} steps in {result.train_seconds:.0f} s "
        f"({result.answer_tokens_per_s:.0f} answer tokens/s); model saved to {result.model_dir}."
    )


@finetune_app.command("run")
def finetune_run(
    dataset: Annotated[
        Path | None,
        typer.Option(help="Dataset folder to train on; default builds one from storage."),
    ] = None,
    dialogs: DialogsOption = None,
    created_from: CreatedFromOption = None,
    created_to: CreatedToOption = None,
    channel: ChannelOption = None,
    status: StatusOption = None,
    min_rating: MinRatingOption = None,
    validation: ValidationOption = 0.1,
    test: TestOption = 0.1,
    method: Annotated[str, typer.Option(help="lora or full.")] = "lora",
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many optimizer steps.")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Epochs when --max-steps is not given.")] = 3.0,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-4,
    max_seq_len: Annotated[int, typer.Option(help="Longest example in tokens.")] = 1024,
    batch_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens per row or batch and device; default 4096 on CUDA, 1024 on CPU."),
    ] = None,
    grad_accum: Annotated[
        int, typer.Option(min=1, help="Packed rows whose gradients add up to one optimizer step.")
    ] = 4,
    eval_every: Annotated[
        int, typer.Option(min=0, help="Optimizer steps between validation runs; 0: at the end.")
    ] = 100,
    batching: Annotated[
        str | None,
        typer.Option(help="packed or length_grouped; default packed on CUDA, else length_grouped."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the run.")] = 42,
    eval_limit: Annotated[
        int, typer.Option(min=1, help="Test pairs that compare the new and the serving model.")
    ] = 100,
    min_pairs: Annotated[
        int, typer.Option(min=1, help="Fewest training pairs a run accepts.")
    ] = 16,
    activate: Annotated[
        bool, typer.Option(help="Activate the new version when it beats the serving model.")
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Activate the new version even if it does not win.")
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(help="Resume an interrupted or failed version from its last checkpoint."),
    ] = None,
) -> None:
    """Build the dataset, fine-tune, compare with the serving model, register and activate.

    The new version becomes active only when it beats the model that serves on the held-out
    test pairs (higher ROUGE-L, token F1 not lower), unless --force is given. A failed or
    interrupted run is registered with that status and the serving model stays active.
    """
    settings = load_settings()
    from bot.generation.base import GenerationError
    from bot.runtime import build_embedder, open_database
    from finetune.config import TrainingConfig
    from finetune.pipeline import (
        PipelineOptions,
        new_version_name,
        read_pipeline_options,
        run_finetune,
    )
    from storage.errors import StorageError

    # A stop from a process manager (SIGTERM) is handled like Ctrl+C: the version is
    # marked interrupted and can be resumed.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    engine, session_factory = open_database(settings)
    try:
        embedder = build_embedder(settings)
        version = resume or new_version_name()
        run_dir = settings.home / "models" / "dialog" / version
        options = PipelineOptions(
            min_train_pairs=min_pairs, eval_limit=eval_limit, activate=activate, force=force
        )
        if resume:
            config = _resumed_config(session_factory, resume)
            # A resumed run keeps the options it started with.
            options = read_pipeline_options(config.output_dir) or options
        else:
            # Built before the dataset, so an invalid training option fails at once.
            config = TrainingConfig(
                model=settings.generation.model,
                dataset_dir=dataset or run_dir / "dataset",
                output_dir=run_dir,
                method=method,
                max_steps=max_steps,
                num_epochs=epochs,
                learning_rate=learning_rate,
                max_seq_len=max_seq_len,
                per_device_batch_tokens=batch_tokens or _default_batch_tokens(),
                batching=batching or _default_batching(),
                gradient_accumulation_steps=grad_accum,
                eval_every_steps=eval_every,
                seed=seed,
            )
            if dataset is None:
                _build_dataset_for_run(
                    session_factory,
                    embedder,
                    config.dataset_dir,
                    created_from=created_from,
                    created_to=created_to,
                    channels=channel,
                    statuses=status,
                    min_rating=min_rating,
                    dialogs=dialogs,
                    validation=validation,
                    test=test,
                    seed=seed,
                )
        model_path = _resolve_base_model(settings)
        baseline = _serving_baseline(session_factory, model_path)
        typer.echo(
            f"Run {version}: training in {config.output_dir}, compared with {baseline.name}."
        )
        outcome = run_finetune(
            session_factory,
            config,
            version=version,
            model_path=model_path,
            baseline=baseline,
            embedder=embedder,
            options=options,
        )
    except KeyboardInterrupt as error:
        if not resume:
            _remove_unregistered_run(session_factory, version, run_dir)
        raise fail(
            f"Fine-tuning run {version} was interrupted; the serving model is unchanged. "
            f"Resume it with: supportbot finetune run --resume {version}",
            code=130,
        ) from error
    except (GenerationError, StorageError, ValueError, OSError) as error:
        if not resume:
            _remove_unregistered_run(session_factory, version, run_dir)
        raise fail(f"Fine-tuning failed; the serving model is unchanged: {error}") from error
    finally:
        engine.dispose()

    state = "activated" if outcome.activated else "not activated"
    typer.echo(
        f"Version {outcome.version}: {outcome.status.value}, {state} ({outcome.decision.reason}). "
        f"Report: {outcome.report.markdown}"
    )


def _remove_unregistered_run(
    session_factory: sessionmaker[Session], version: str, run_dir: Path
) -> None:
    """Delete the folder of a run that stopped before its version was registered.

    Such a folder contains only the redacted dataset, which no version refers to.
    """
    import shutil

    from storage import model_registry
    from storage.errors import NotFoundError

    try:
        with session_factory() as session:
            model_registry.get_version(session, version)
        return
    except NotFoundError:
        pass
    if run_dir.is_dir():
        shutil.rmtree(run_dir, ignore_errors=True)
        logger.info("Removed %s of the unregistered run %s", run_dir, version)


def _default_batching() -> str:
    import torch

    # On 2 CPU cores length-grouped batches trained 1.5x faster than padded ones and
    # packed rows 1.2x (bench/bench_finetune.py), because attention over a packed row
    # spans all its examples. On CUDA packing avoids padding altogether.
    return "packed" if torch.cuda.is_available() else "length_grouped"


def _default_batch_tokens() -> int:
    import torch

    # On the CPU, attention over a packed row costs the square of its length, so rows
    # of 4096 tokens trained 2.3x slower than padded batches (bench/bench_finetune.py).
    return 4096 if torch.cuda.is_available() else 1024


def _raise_keyboard_interrupt(signal_number: int, _frame: object) -> None:
    logger.warning("Received signal %d; stopping the fine-tuning run", signal_number)
    raise KeyboardInterrupt


def _build_dataset_for_run(
    session_factory: sessionmaker[Session],
    embedder: SentenceTransformerEmbedder,
    out_dir: Path,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    channels: list[str] | None,
    statuses: list[str] | None,
    min_rating: int | None,
    dialogs: list[Path] | None,
    validation: float,
    test: float,
    seed: int,
) -> None:
    from finetune.build import DatasetConfig
    from finetune.pairs import ConversationFilter

    conversation_filter = ConversationFilter(
        created_from=created_from,
        created_to=created_to,
        channels=tuple(channels or ()),
        statuses=tuple(statuses or ()),
        min_rating=min_rating,
    )
    config = DatasetConfig(
        out_dir=out_dir,
        conversation_filter=conversation_filter,
        validation=validation,
        test=test,
        seed=seed,
    )
    if dialogs:
        check_paths_exist(dialogs, "Dialog file")
    stats = _write_dataset(
        config, dialogs=dialogs, session_factory=session_factory, embedder=embedder
    )
    typer.echo(f"Dataset {out_dir}: pairs {stats.pairs}, redacted {stats.redactions}.")


def _write_dataset(
    config: DatasetConfig,
    *,
    dialogs: list[Path] | None,
    session_factory: sessionmaker[Session] | None,
    embedder: SentenceTransformerEmbedder | None,
) -> DatasetStats:
    """Build the dataset from dialog files when given, else from the database."""
    from finetune.build import build_dataset, build_dataset_from_files

    if dialogs:
        return build_dataset_from_files(dialogs, config, embedder=embedder)
    assert session_factory is not None, "a session factory is needed without dialog files"
    return build_dataset(session_factory, config, embedder=embedder)


def _resumed_config(session_factory: sessionmaker[Session], version: str) -> TrainingConfig:
    from finetune.config import TrainingConfig
    from storage import model_registry

    with session_factory() as session:
        model_version = model_registry.get_version(session, version)
        values = dict(model_version.training_config)
    return TrainingConfig(**values)


def _resolve_base_model(settings: Settings) -> Path:
    from bot.generation.model_cache import resolve_model_path

    if settings.generation.backend != "transformers":
        raise ValueError(
            f"generation.backend is {settings.generation.backend!r}; fine-tuning needs the "
            "'transformers' backend and a local model: set SUPPORTBOT_GENERATION__BACKEND"
        )
    return resolve_model_path(settings.generation.model, settings.model_cache_dir)


def _serving_baseline(session_factory: sessionmaker[Session], base_path: Path) -> Baseline:
    from finetune.pipeline import Baseline
    from storage import model_registry
    from storage.models import ModelKind

    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.DIALOG)
    if active is not None and active.path and Path(active.path).is_dir():
        return Baseline(active.version, Path(active.path))
    if active is not None:
        logger.warning(
            "Active version %s has no model folder at %s; comparing with the base model",
            active.version,
            active.path,
        )
    return Baseline("base", base_path)
