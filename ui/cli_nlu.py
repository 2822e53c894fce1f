"""``supportbot finetune intent`` and ``supportbot finetune ner``: train NLU model versions."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ui.cli_finetune import finetune_app
from ui.cli_support import check_paths_exist, fail, load_settings

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger(__name__)

# Languages as the readers name them, mapped to the codes the bot detects on each turn.
_LANGUAGE_CODES = {"en": "en", "zh": "zh-CN", "zh-cn": "zh-CN", "zh-CN": "zh-CN"}

TrainFileOption = Annotated[
    Path | None,
    typer.Option("--train", help="Labelled training file; see docs/nlu.md for the formats."),
]
EvalFileOption = Annotated[
    Path | None,
    typer.Option(
        "--eval",
        help="Labelled test file for the report. Default: the test split of --dataset, "
        "else the validation data.",
    ),
]
ValidationFileOption = Annotated[
    Path | None,
    typer.Option(
        "--validation",
        help="Labelled validation file for calibration and thresholds; default: 10% of --train.",
    ),
]
TaggingValidationFileOption = Annotated[
    Path | None,
    typer.Option(
        "--validation",
        help="Labelled validation file for choosing the epoch (transformer) or the "
        "regularisation (CRF); default: the validation split of --dataset, else none.",
    ),
]
DatasetOption = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="Name of a public data set to use instead of --train, read from "
        "SUPPORTBOT_DATA_DIR (default <home>/datasets).",
    ),
]
LanguageOption = Annotated[
    str | None,
    typer.Option(help="Language the model serves: en or zh-CN; default: detected from the data."),
]
ActivateOption = Annotated[
    bool, typer.Option(help="Activate the new version when it is not worse than the serving one.")
]
ForceOption = Annotated[bool, typer.Option(help="Activate the new version even if it is worse.")]
OutOption = Annotated[
    Path | None,
    typer.Option(help="Run folder; default <home>/models/<kind>/<version>."),
]


@finetune_app.command("intent")
def finetune_intent(
    train: TrainFileOption = None,
    eval_file: EvalFileOption = None,
    validation_file: ValidationFileOption = None,
    dataset: DatasetOption = None,
    backend: Annotated[
        str,
        typer.Option(
            help="auto (ensemble if the encoder's tokenizer reads the data, else charngram), "
            "charngram, encoder, ensemble (both, weighted on validation) or compare (train "
            "both, keep the better on validation)."
        ),
    ] = "auto",
    base_model: Annotated[
        str,
        typer.Option(
            help="Base encoder: 'packaged:all-MiniLM-L6-v2', a local folder or a Hugging Face id."
        ),
    ] = "packaged:all-MiniLM-L6-v2",
    epochs: Annotated[float, typer.Option(min=0.01, help="Encoder fine-tuning epochs.")] = 5.0,
    learning_rate: Annotated[
        float,
        typer.Option(help="Learning rate of the encoder; the head's is 20 times higher."),
    ] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Encoder batch size.")] = 32,
    max_steps: Annotated[
        int | None,
        typer.Option(
            min=1, help="Maximum encoder training steps, for quick runs; overrides --epochs."
        ),
    ] = None,
    explicit_oos: Annotated[
        bool | None,
        typer.Option(
            help="Train an 'oos' class from out-of-scope training turns; default: when the "
            "training data has some."
        ),
    ] = None,
    max_in_scope_drop: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="With out-of-scope validation turns: in-scope accuracy the threshold may cost "
            "(0.01 is one point).",
        ),
    ] = 0.01,
    language: LanguageOption = None,
    seed: Annotated[int, typer.Option(help="Seed of splits and training.")] = 42,
    out: OutOption = None,
    activate: ActivateOption = True,
    force: ForceOption = False,
) -> None:
    """Train an intent classifier with out-of-scope detection and register it as a version.

    The training data is --train (CSV with text and intent columns, JSONL, or seq.in/label)
    or a public --dataset. The run evaluates on --eval, the data set's test split or the
    validation data, and writes eval_report.md with accuracy, macro F1, per-intent scores,
    the most confused pairs and a confusion-matrix plot.
    """
    settings = load_settings()
    from finetune.intent.encoder_training import EncoderOptions
    from finetune.intent.training import IntentTrainingError, IntentTrainingOptions
    from finetune.nlu_data.errors import NluDataError
    from finetune.nlu_pipeline import run_intent_training
    from nlu.intent.encoder import EncoderLoadError
    from storage.errors import StorageError
    from storage.models import ModelKind

    splits = _read_intent_data(settings, train, eval_file, validation_file, dataset, seed)
    served_language = _language_code(language or splits.language) or _guess_language(
        [item.text for item in splits.train]
    )
    try:
        options = IntentTrainingOptions(
            backend=backend,
            encoder=EncoderOptions(
                base_model=base_model,
                epochs=epochs,
                learning_rate=learning_rate,
                batch_size=batch_size,
                max_steps=max_steps,
                seed=seed,
            ),
            explicit_oos=explicit_oos,
            max_in_scope_drop=max_in_scope_drop,
            language=served_language,
            seed=seed,
        )
    except IntentTrainingError as error:
        raise fail(f"Invalid option: {error}", code=2) from error
    engine, session_factory, version, run_dir = _start_run(
        settings, ModelKind.INTENT, served_language, out
    )
    try:
        typer.echo(
            f"Run {version}: {len(splits.train)} training turns of {splits.name}, "
            f"backend {backend}, folder {run_dir}."
        )
        outcome = run_intent_training(
            session_factory,
            train=splits.train,
            validation=splits.validation,
            test=splits.test,
            run_dir=run_dir,
            version=version,
            options=options,
            data_sources={"dataset": splits.name},
            activate=activate,
            force=force,
        )
    except KeyboardInterrupt as error:
        message = f"Intent training {version} was interrupted; the serving model is unchanged."
        raise fail(message, code=130) from error
    except (
        IntentTrainingError,
        NluDataError,
        EncoderLoadError,
        StorageError,
        ValueError,
        OSError,
    ) as error:
        raise fail(f"Intent training failed; the serving model is unchanged: {error}") from error
    finally:
        engine.dispose()

    _echo_outcome(outcome)


def _read_intent_data(settings: Settings, train, eval_file, validation_file, dataset, seed):
    from finetune.nlu_data.errors import NluDataError
    from finetune.nlu_data.intent_readers import (
        IntentSplits,
        check_intent_labels,
        read_intent_file,
    )
    from finetune.nlu_data.public import read_public_intent_dataset

    if (train is None) == (dataset is None):
        raise fail("Give either --train FILE or --dataset NAME (one of them).", code=2)
    try:
        if dataset is not None:
            splits = read_public_intent_dataset(dataset, _data_dir(settings), seed=seed)
        else:
            check_paths_exist(
                [path for path in (train, eval_file, validation_file) if path is not None],
                "Intent data file",
            )
            items = read_intent_file(train)
            splits = IntentSplits(items, [], [], train.name, "")
        if eval_file is not None:
            splits.test = read_intent_file(eval_file)
            check_intent_labels(splits.train, splits.test, eval_file)
        if validation_file is not None:
            splits.validation = read_intent_file(validation_file)
            check_intent_labels(splits.train, splits.validation, validation_file)
        elif dataset is None:
            check_intent_labels(splits.train, [], train)
    except (NluDataError, ValueError) as error:
        raise fail(f"Cannot read the intent data: {error}", code=2) from error
    if dataset is not None:
        _warn_unseen_intents(splits)
    return splits


def _warn_unseen_intents(splits) -> None:
    """Say which test or validation intents of a public data set training never saw.

    Public splits are kept as published (the CAIS test split has one GetDate turn that
    its training split lacks), so such turns are scored as misses, not dropped.
    """
    known = {item.intent for item in splits.train} | {"oos"}
    for name, items in (("validation", splits.validation), ("test", splits.test)):
        unseen = sorted({item.intent for item in items} - known)
        if unseen:
            count = sum(item.intent in unseen for item in items)
            typer.echo(
                f"Warning: {count} {name} turns of {splits.name} have intents missing from "
                f"its training split ({', '.join(unseen[:5])}); they count as errors.",
                err=True,
            )


def _start_run(settings: Settings, kind, language: str | None, out: Path | None):
    """Open the database and name the new version and its run folder."""
    from bot.runtime import open_database
    from finetune.nlu_pipeline import new_nlu_version_name

    engine, session_factory = open_database(settings)
    version = new_nlu_version_name(session_factory, kind, language)
    return engine, session_factory, version, out or settings.home / "models" / kind.value / version


def _data_dir(settings: Settings) -> Path:
    data_dir = settings.data_dir or settings.home / "datasets"
    if not data_dir.is_dir():
        raise fail(
            f"The public data sets folder {data_dir} does not exist: set SUPPORTBOT_DATA_DIR "
            "to the folder that contains them, or copy them into this folder (docs/nlu.md "
            "lists the data sets).",
            code=2,
        )
    return data_dir


def _language_code(language: str | None) -> str | None:
    if not language:
        return None
    code = _LANGUAGE_CODES.get(language)
    if code is None:
        raise fail(f"Unknown --language {language!r}: use en or zh-CN.", code=2)
    return code


def _echo_outcome(outcome) -> None:
    state = "activated" if outcome.activated else "not activated"
    headline = ", ".join(
        f"{key} {value:.4f}" for key, value in outcome.metrics.items() if isinstance(value, float)
    )
    typer.echo(
        f"Version {outcome.version}: {outcome.status.value}, {state} ({outcome.reason}). "
        f"Test: {headline}. Report: {outcome.report_path}"
    )


@finetune_app.command("ner")
def finetune_ner(
    train: TrainFileOption = None,
    eval_file: EvalFileOption = None,
    validation_file: TaggingValidationFileOption = None,
    dataset: DatasetOption = None,
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="conll, seq (seq.in/seq.out), chars (one character and tag per line), jsonl "
            "(text with entity spans) or auto (by file name).",
        ),
    ] = "auto",
    scheme: Annotated[
        str, typer.Option(help="Tag scheme of the files: iob1, bio, bioes or auto.")
    ] = "auto",
    backend: Annotated[
        str | None,
        typer.Option(
            help="transformer (fine-tuned encoder) or crf; default transformer for English, "
            "crf for Chinese, which the packaged encoder cannot read."
        ),
    ] = None,
    base_model: Annotated[
        str,
        typer.Option(
            help="Base encoder: 'packaged:all-MiniLM-L6-v2', a local folder or a Hugging Face id."
        ),
    ] = "packaged:all-MiniLM-L6-v2",
    epochs: Annotated[float, typer.Option(min=0.01, help="Transformer fine-tuning epochs.")] = 8.0,
    language: LanguageOption = None,
    seed: Annotated[int, typer.Option(help="Seed of training.")] = 42,
    out: OutOption = None,
    activate: ActivateOption = True,
    force: ForceOption = False,
) -> None:
    """Train an entity (slot) tagger and register it as a version.

    The training data is --train (CoNLL columns, seq.in/seq.out, character-per-line or
    JSONL spans, with IOB1, BIO or BIOES tags) or a public --dataset. The run evaluates on
    --eval, the data set's test split or the validation data, with entity-level precision,
    recall and F1 per type (seqeval). It writes eval_report.md into the model folder.
    """
    settings = load_settings()
    from finetune.ner.config import NerTrainingConfig
    from finetune.nlu_data.errors import NluDataError
    from finetune.nlu_pipeline import run_ner_training
    from storage.errors import StorageError
    from storage.models import ModelKind

    splits = _read_tagging_data(
        settings, train, eval_file, validation_file, dataset, file_format, scheme, seed
    )
    served_language = _language_code(language or splits.language) or "en"
    chosen_backend = backend or ("crf" if served_language == "zh-CN" else "transformer")
    if chosen_backend not in ("transformer", "crf"):
        raise fail(f"Invalid --backend {chosen_backend!r}: use transformer or crf.", code=2)
    try:
        config = NerTrainingConfig(base_model=base_model, epochs=epochs, seed=seed)
    except ValueError as error:
        raise fail(f"Invalid training option: {error}", code=2) from error
    engine, session_factory, version, run_dir = _start_run(
        settings, ModelKind.NER, served_language, out
    )
    try:
        typer.echo(
            f"Run {version}: {len(splits.train)} training sentences of {splits.name}, "
            f"backend {chosen_backend}, folder {run_dir}."
        )
        outcome = run_ner_training(
            session_factory,
            train=splits.train,
            validation=splits.validation,
            test=splits.test,
            run_dir=run_dir,
            version=version,
            backend=chosen_backend,
            language=served_language,
            config=config,
            data_sources={"dataset": splits.name},
            activate=activate,
            force=force,
        )
    except KeyboardInterrupt as error:
        message = f"Entity training {version} was interrupted; the serving model is unchanged."
        raise fail(message, code=130) from error
    except (NluDataError, StorageError, ValueError, OSError, RuntimeError) as error:
        raise fail(f"Entity training failed; the serving model is unchanged: {error}") from error
    finally:
        engine.dispose()

    _echo_outcome(outcome)


def _read_tagging_data(
    settings: Settings, train, eval_file, validation_file, dataset, file_format, scheme, seed
):
    from finetune.nlu_data.errors import NluDataError
    from finetune.nlu_data.public import read_public_tagging_dataset
    from finetune.nlu_data.tagging_readers import TaggingSplits, read_tagging_file

    if (train is None) == (dataset is None):
        raise fail("Give either --train FILE or --dataset NAME (one of them).", code=2)

    def read(path: Path):
        return read_tagging_file(path, fmt=file_format, scheme=scheme)

    try:
        if dataset is not None:
            splits = read_public_tagging_dataset(dataset, _data_dir(settings), seed=seed)
        else:
            check_paths_exist(
                [path for path in (train, eval_file, validation_file) if path is not None],
                "Entity data file",
            )
            splits = TaggingSplits(read(train), [], [], train.name, "")
        if eval_file is not None:
            splits.test = read(eval_file)
        if validation_file is not None:
            splits.validation = read(validation_file)
    except (NluDataError, ValueError) as error:
        raise fail(f"Cannot read the entity data: {error}", code=2) from error
    if not splits.language:
        splits.language = _guess_language([sentence.text for sentence in splits.train])
    return splits


def _guess_language(texts: list[str]) -> str:
    from retrieval.language import detect_majority_language

    return detect_majority_language(texts)
