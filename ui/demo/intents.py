"""The demo's English intent model, trained on the SGD user turns of the demo slice.

A user turn that states an intent (an ``INFORM_INTENT`` or ``AFFIRM_INTENT`` act in its
first frame) is labelled with that frame's active intent. In the two demo files these are
``ReserveRestaurant``, ``FindRestaurants`` and ``PlayMovie``. Every other user turn is
labelled out of scope (``oos``): slot answers ("Sino", "7 pm"), questions about an offer,
confirmations and thanks. SGD keeps the active intent in the dialogue state until the task
changes, so labelling those turns with it would teach the model that "Thanks" or "Sino"
is a restaurant request. A template would then answer "Thanks" again, and the policy drops
a pending slot question when the reply is confidently another intent.

The StackFAQ thread titles of the demo knowledge base are ``oos`` turns too. Without them
every how-to question would land in one of the three intents and could get a restaurant
or film template in place of the knowledge-base answer.

Each SGD conversation goes into the split that :func:`finetune.splits.conversation_split`
gives its external id. The ids are read with the SGD importer, so they match the stored
conversations. StackFAQ titles are split the same way with the id ``stackfaq:<title>``.
Test conversations and titles are only evaluated on, never trained on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from finetune.intent.training import IntentTrainingOptions
from finetune.nlu_data.intent_readers import IntentSplits, LabelledUtterance
from finetune.nlu_pipeline import NluRunOutcome, new_nlu_version_name, run_intent_training
from finetune.splits import conversation_split
from nlu.types import OUT_OF_SCOPE
from storage import model_registry
from storage.importers.records import DialogRecord, InvalidRecord
from storage.importers.sgd import read_sgd_dialogs
from storage.models import ModelKind, Role

logger = logging.getLogger(__name__)

DEMO_INTENT_LANGUAGE = "en"
DEMO_INTENT_SEED = 42
# Dialogue acts with which an SGD user states or accepts an intent.
INTENT_ACTS = frozenset({"INFORM_INTENT", "AFFIRM_INTENT"})


def read_demo_intent_splits(
    sgd_paths: Iterable[Path], faq_path: Path | None = None, *, seed: int = DEMO_INTENT_SEED
) -> IntentSplits:
    """Read the labelled user turns of SGD files and the out-of-scope FAQ titles.

    Args:
        sgd_paths: SGD dialogue files, as the demo imports them.
        faq_path: FAQ JSONL written by :func:`ui.demo.corpus.build_demo_corpus`; its
            ``question`` values become ``oos`` turns. None adds none.
        seed: Seed of :func:`finetune.splits.conversation_split`.

    Returns:
        Train, validation and test turns by conversation split, named ``demo-sgd``.

    Raises:
        ValueError: If a dialogue or FAQ line cannot be read; the message names the file.
    """
    splits = IntentSplits([], [], [], "demo-sgd", DEMO_INTENT_LANGUAGE)
    for path in sgd_paths:
        for record in read_sgd_dialogs(path):
            if isinstance(record, InvalidRecord):
                raise ValueError(
                    f"{record.path}: {record.location}: invalid SGD dialogue ({record.reason}). "
                    "Replace the file with the published copy"
                )
            split = conversation_split(record.external_id, seed=seed)
            _split_list(splits, split).extend(_labelled_user_turns(record))

    if faq_path is not None:
        for number, question in enumerate(_read_faq_questions(faq_path), start=1):
            split = conversation_split(f"stackfaq:{question}", seed=seed)
            item = LabelledUtterance(question, OUT_OF_SCOPE, f"{faq_path}:{number}")
            _split_list(splits, split).append(item)

    logger.info(
        "Read demo intent turns train=%d validation=%d test=%d",
        len(splits.train),
        len(splits.validation),
        len(splits.test),
    )
    return splits


def _split_list(splits: IntentSplits, split: str) -> list[LabelledUtterance]:
    return {"train": splits.train, "validation": splits.validation, "test": splits.test}[split]


def _labelled_user_turns(record: DialogRecord) -> list[LabelledUtterance]:
    items = []
    for number, turn in enumerate(record.turns, start=1):
        if turn.role is not Role.CUSTOMER:
            continue
        frames = turn.meta.get("frames") or []
        label = _turn_intent(frames[0]) if frames else OUT_OF_SCOPE
        items.append(LabelledUtterance(turn.text, label, f"{record.external_id}#{number}"))
    return items


def _turn_intent(frame: dict) -> str:
    """Return the frame's active intent when the turn states it, else ``oos``."""
    acts = {action.get("act") for action in frame.get("actions") or []}
    intent = frame.get("active_intent")
    if acts & INTENT_ACTS and isinstance(intent, str) and intent != "NONE":
        return intent
    return OUT_OF_SCOPE


def _read_faq_questions(path: Path) -> list[str]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = json.loads(line).get("question")
        except (json.JSONDecodeError, AttributeError) as error:
            raise ValueError(
                f"{path}:{number}: invalid FAQ line, expected a JSON object ({error}). "
                "Run `supportbot demo` again to rewrite the file"
            ) from error
        if isinstance(question, str) and question.strip():
            questions.append(question.strip())
    return questions


def ensure_demo_intent_model(
    session_factory: sessionmaker[Session],
    models_dir: Path,
    sgd_paths: Iterable[Path],
    faq_path: Path | None,
) -> str:
    """Train, register and activate the English demo intent model unless one is active.

    An active English intent model, the demo's own from an earlier start or one the user
    trained, is kept as it is.

    Args:
        session_factory: Database of the model registry.
        models_dir: Folder that gets one run folder per version (``<home>/models/intent``).
        sgd_paths: SGD dialogue files of the demo slice.
        faq_path: FAQ JSONL whose questions become out-of-scope turns, or None.

    Returns:
        One line for the command line: the version that serves English intents and how it
        scored on the held-out test turns.

    Raises:
        ValueError: If the data cannot be read or cannot train a classifier
            (``IntentTrainingError`` is a ``ValueError``).
        storage.errors.StorageError: If the registry cannot be read or written.
    """
    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.INTENT, DEMO_INTENT_LANGUAGE)
        active_name = active.version if active is not None else None
    if active_name is not None:
        logger.info("Keeping active intent model version=%s", active_name)
        return f"Intent model {active_name} already serves English turns."

    splits = read_demo_intent_splits(sgd_paths, faq_path)
    outcome = train_demo_intent_model(session_factory, models_dir, splits)
    return describe_outcome(outcome)


def train_demo_intent_model(
    session_factory: sessionmaker[Session], models_dir: Path, splits: IntentSplits
) -> NluRunOutcome:
    """Train the character n-gram classifier on ``splits`` and register it as a version.

    The version is activated when it wins against the serving English model, which it
    always does when none serves yet.
    """
    version = new_nlu_version_name(session_factory, ModelKind.INTENT, DEMO_INTENT_LANGUAGE)
    logger.info("Training demo intent model version=%s", version)
    return run_intent_training(
        session_factory,
        train=splits.train,
        validation=splits.validation,
        test=splits.test,
        run_dir=models_dir / version,
        version=version,
        options=IntentTrainingOptions(
            backend="charngram", language=DEMO_INTENT_LANGUAGE, seed=DEMO_INTENT_SEED
        ),
        data_sources={
            "dataset": splits.name,
            "held_out": "conversations whose conversation_split is test",
        },
    )


def describe_outcome(outcome: NluRunOutcome) -> str:
    """Return one line about a finished demo intent run."""
    metrics = outcome.metrics
    scores = ", ".join(
        f"{name} {metrics[name]:.3f}"
        for name in ("accuracy", "in_scope_accuracy", "oos_recall")
        if isinstance(metrics.get(name), float)
    )
    state = "active" if outcome.activated else f"not activated ({outcome.reason})"
    return (
        f"Trained intent model {outcome.version} ({state}) on the demo's SGD turns: "
        f"{scores} on {metrics.get('examples', 0)} held-out turns."
    )
