"""The demo's English entity tagger, a CRF trained on the SGD turns of the demo slice.

The tagger finds the values that the demo's answer templates ask for and a few that help
a search: ``restaurant_name``, ``party_size``, ``city``, ``cuisine`` and ``title``. The
type names are SGD's slot names, so they are also the template slot names. Dates and times
are left to the rule extractors, which also turn "tomorrow" into a date.

SGD marks character spans only for slots with free values, and only where a speaker says
the value. Two gaps of the two demo files are filled here:

- No user turn has a ``restaurant_name`` span, because users pick a restaurant that the
  agent offered. The agent turns have 595 of them ("How about Sino in San Jose?"), so
  agent turns are tagged too. A restaurant name tagged in an earlier turn of the same
  dialogue is also tagged where a user turn repeats it ("a reservation at Pier 29").
- ``party_size`` is a categorical slot without spans. A turn whose dialogue act gives its
  value ("2") gets a span at the number in its text ("for 2", "for two people"),
  together with a following "people" or "person" word. Templates print the value after
  "for", so "4 people" reads better there than "4".

Each conversation goes into the split that :func:`finetune.splits.conversation_split`
gives its external id, with the seed of the demo intent model, so both models hold out
the same conversations. The ids are read with the SGD importer, so they match the stored
conversations. Test conversations are only evaluated on, never trained on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex
from sqlalchemy.orm import Session, sessionmaker

from finetune.ner.config import NerTrainingConfig
from finetune.nlu_data.tagging_readers import (
    SpanSentenceCollector,
    TaggingSplits,
    spans_from_values,
)
from finetune.nlu_pipeline import NluRunOutcome, new_nlu_version_name, run_ner_training
from finetune.splits import conversation_split
from storage import model_registry
from storage.importers.records import DialogRecord, InvalidRecord
from storage.importers.sgd import read_sgd_dialogs
from storage.models import ModelKind
from ui.demo.intents import DEMO_INTENT_SEED

logger = logging.getLogger(__name__)

DEMO_ENTITY_LANGUAGE = "en"
DEMO_ENTITY_TYPES = frozenset({"restaurant_name", "party_size", "city", "cuisine", "title"})
# CRF settings of the demo tagger. A fixed regularisation skips the grid search of
# NerTrainingConfig, which trains four models. With 100 iterations on one CPU thread, the
# grid took 27 s on the demo slice, and 0.05/0.01 had the best validation entity F1 (0.925,
# the worst pair 0.910). Training one model took 5 to 7 s.
DEMO_CRF_C1 = 0.05
DEMO_CRF_C2 = 0.01
DEMO_CRF_MAX_ITERATIONS = 100

_NUMBER_WORDS = {
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
}
# A number followed by one of these words is one party_size span ("4 people").
_PEOPLE_WORDS = r"(?:people|persons|person|guests|diners)"


def read_demo_entity_splits(
    sgd_paths: Iterable[Path], *, seed: int = DEMO_INTENT_SEED
) -> TaggingSplits:
    """Read the tagged user and agent turns of SGD files, split by conversation.

    Args:
        sgd_paths: SGD dialogue files, as the demo imports them.
        seed: Seed of :func:`finetune.splits.conversation_split`.

    Returns:
        Train, validation and test sentences named ``demo-sgd``. Each sentence's source is
        ``<external id>#<turn number>``, and its tags use only ``DEMO_ENTITY_TYPES``.

    Raises:
        ValueError: If a dialogue cannot be read; the message names the file.
    """
    collectors = {
        split: SpanSentenceCollector(f"demo-sgd/{split}", DEMO_ENTITY_LANGUAGE)
        for split in ("train", "validation", "test")
    }
    for path in sgd_paths:
        for record in read_sgd_dialogs(path):
            if isinstance(record, InvalidRecord):
                raise ValueError(
                    f"{record.path}: {record.location}: invalid SGD dialogue ({record.reason}). "
                    "Replace the file with the published copy"
                )
            collector = collectors[conversation_split(record.external_id, seed=seed)]
            for text, spans, source in _tagged_turns(record):
                collector.add(text, spans, source)

    splits = TaggingSplits(
        collectors["train"].finish(),
        collectors["validation"].finish(),
        collectors["test"].finish(),
        "demo-sgd",
        DEMO_ENTITY_LANGUAGE,
    )
    logger.info(
        "Read demo entity turns train=%d validation=%d test=%d",
        len(splits.train),
        len(splits.validation),
        len(splits.test),
    )
    return splits


def _tagged_turns(record: DialogRecord) -> list[tuple[str, list[tuple[int, int, str]], str]]:
    """Return ``(text, spans, source)`` of every turn of one dialogue."""
    turns = []
    earlier_names: set[str] = set()
    for number, turn in enumerate(record.turns, start=1):
        frames = turn.meta.get("frames") or []
        annotated = [
            (slot["start"], slot["end"], slot["slot"])
            for frame in frames
            for slot in frame["slots"]
        ]
        spans = [span for span in annotated if span[2] in DEMO_ENTITY_TYPES]
        spans += _repeated_names(turn.text, earlier_names, annotated)
        party_size = _party_size_span(
            turn.text, _act_values(frames, "party_size"), [*annotated, *spans]
        )
        if party_size is not None:
            spans.append(party_size)
        earlier_names.update(
            turn.text[start:end] for start, end, slot in spans if slot == "restaurant_name"
        )
        turns.append((turn.text, spans, f"{record.external_id}#{number}"))
    return turns


def _repeated_names(
    text: str, names: set[str], annotated: Sequence[tuple[int, int, str]]
) -> list[tuple[int, int, str]]:
    """Return spans of restaurant names from earlier turns that this turn repeats untagged."""
    if not names:
        return []
    found, _ = spans_from_values(text, {"restaurant_name": sorted(names)})
    return [span for span in found if not _overlaps(span, annotated)]


def _act_values(frames: Sequence[dict], slot: str) -> list[str]:
    return [
        value
        for frame in frames
        for action in frame["actions"]
        if action.get("slot") == slot
        for value in action.get("values") or []
        if isinstance(value, str)
    ]


def _party_size_span(
    text: str, values: Sequence[str], annotated: Sequence[tuple[int, int, str]]
) -> tuple[int, int, str] | None:
    """Place a party size given by a dialogue act at its number in ``text``.

    A match followed by a people word wins over a bare number. A number that overlaps an
    annotated span (the "2" of "2 pm") or is part of a clock time ("2:30") is skipped.
    """
    candidates = []
    for value in dict.fromkeys(values):
        forms = [regex.escape(value)]
        if value in _NUMBER_WORDS:
            forms.append(_NUMBER_WORDS[value])
        pattern = rf"\b(?:{'|'.join(forms)})\b(?![:.]\d)(?P<people>\s+{_PEOPLE_WORDS}\b)?"
        for match in regex.finditer(pattern, text, flags=regex.IGNORECASE):
            span = (match.start(), match.end(), "party_size")
            if not _overlaps(span, annotated):
                candidates.append((match.group("people") is None, match.start(), span))
    return min(candidates)[2] if candidates else None


def _overlaps(span: tuple[int, int, str], others: Iterable[tuple[int, int, str]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end, _ in others)


def ensure_demo_entity_model(
    session_factory: sessionmaker[Session], models_dir: Path, sgd_paths: Iterable[Path]
) -> str:
    """Train, register and activate the English demo entity tagger unless one is active.

    An active English entity model, the demo's own from an earlier start or one the user
    trained, is kept as it is.

    Args:
        session_factory: Database of the model registry.
        models_dir: Folder that gets one run folder per version (``<home>/models/ner``).
        sgd_paths: SGD dialogue files of the demo slice.

    Returns:
        One line for the command line: the version that serves English entities and how it
        scored on the held-out test turns, or why none was trained (the training turns
        have no entity of ``DEMO_ENTITY_TYPES``).

    Raises:
        ValueError: If the data cannot be read or cannot train a tagger.
        storage.errors.StorageError: If the registry cannot be read or written.
    """
    with session_factory() as session:
        active = model_registry.get_active_version(session, ModelKind.NER, DEMO_ENTITY_LANGUAGE)
        active_name = active.version if active is not None else None
    if active_name is not None:
        logger.info("Keeping active entity model version=%s", active_name)
        return f"Entity model {active_name} already serves English turns."

    splits = read_demo_entity_splits(sgd_paths)
    if not any(tag != "O" for sentence in splits.train for tag in sentence.tags):
        logger.warning(
            "Skipped the demo entity model: its training turns have no entity of types=%s",
            sorted(DEMO_ENTITY_TYPES),
        )
        return (
            "No entity model trained: the demo's SGD training turns have no "
            f"{', '.join(sorted(DEMO_ENTITY_TYPES))} values."
        )
    outcome = train_demo_entity_model(session_factory, models_dir, splits)
    return describe_entity_outcome(outcome)


def train_demo_entity_model(
    session_factory: sessionmaker[Session], models_dir: Path, splits: TaggingSplits
) -> NluRunOutcome:
    """Train the CRF tagger on ``splits`` and register it as a version.

    The version is activated when it scores at least as well as the serving English
    tagger, which it always does when none serves yet.
    """
    version = new_nlu_version_name(session_factory, ModelKind.NER, DEMO_ENTITY_LANGUAGE)
    logger.info("Training demo entity model version=%s", version)
    return run_ner_training(
        session_factory,
        train=splits.train,
        validation=splits.validation,
        test=splits.test,
        run_dir=models_dir / version,
        version=version,
        backend="crf",
        language=DEMO_ENTITY_LANGUAGE,
        config=NerTrainingConfig(
            crf_c1=DEMO_CRF_C1,
            crf_c2=DEMO_CRF_C2,
            crf_max_iterations=DEMO_CRF_MAX_ITERATIONS,
        ),
        data_sources={
            "dataset": splits.name,
            "entity_types": sorted(DEMO_ENTITY_TYPES),
            "held_out": "conversations whose conversation_split is test",
        },
    )


def describe_entity_outcome(outcome: NluRunOutcome) -> str:
    """Return one line about a finished demo entity run."""
    f1 = outcome.metrics.get("entity_f1")
    score = f"entity F1 {f1:.3f}" if isinstance(f1, float) else "no entity F1"
    state = "active" if outcome.activated else f"not activated ({outcome.reason})"
    return (
        f"Trained entity model {outcome.version} ({state}) on the demo's SGD turns: "
        f"{score} on the held-out turns."
    )
