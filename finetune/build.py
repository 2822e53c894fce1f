"""Build the supervised fine-tuning dataset from stored conversations, top to bottom.

Steps: select conversations → redact personal data and build (context, question →
answer) pairs → keep the best answer among near-duplicate questions → split by
conversation → write chat-format JSONL with a stats report.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from finetune.dataset import DatasetStats, write_dataset
from finetune.pairs import (
    ConversationFilter,
    TextEmbedder,
    choose_best_answers,
    collect_pairs,
    select_conversations,
)
from finetune.redaction import Redactor
from finetune.splits import split_by_conversation
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.dialog_import import import_dialogs

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a customer-support agent. Answer the customer's last message helpfully and briefly."
)


class NoConversationsError(ValueError):
    """No stored conversation matches the selection."""


@dataclass(frozen=True)
class DatasetConfig:
    """Options of one dataset build.

    Attributes:
        out_dir: Folder for train/validation/test JSONL and stats.json.
        conversation_filter: Which stored conversations to read.
        context_turns: Earlier turns kept as context of each pair.
        validation: Expected share of conversations in the validation split.
        test: Expected share of conversations in the test split.
        seed: Seed of the split; the same seed gives the same split.
        duplicate_similarity: Cosine similarity from which two questions count as the
            same; 1.0 or more disables merging.
        system_prompt: System message of every example.
    """

    out_dir: Path
    conversation_filter: ConversationFilter = ConversationFilter()
    context_turns: int = 4
    validation: float = 0.1
    test: float = 0.1
    seed: int = 42
    duplicate_similarity: float = 0.9
    system_prompt: str = DEFAULT_SYSTEM_PROMPT


def build_dataset(
    session_factory: sessionmaker[Session],
    config: DatasetConfig,
    *,
    embedder: TextEmbedder | None = None,
    redactor: Redactor | None = None,
) -> DatasetStats:
    """Build and write the dataset described by ``config``.

    Args:
        session_factory: Session factory of the supportbot database.
        config: What to select and where to write.
        embedder: Embeds questions for near-duplicate merging; None skips merging.
        redactor: Personal-data redactor; None uses the default patterns.

    Returns:
        The statistics written to stats.json, with redaction counts.

    Raises:
        NoConversationsError: If no stored conversation matches the filter.
        ValueError: If a split fraction is out of range.
        OSError: If the output cannot be written.
    """
    started = time.perf_counter()
    redactor = redactor or Redactor()
    redactions: Counter[str] = Counter()

    def redact(text: str) -> str:
        result = redactor.redact(text)
        redactions.update(result.counts)
        return result.text

    with session_factory() as session:
        conversation_ids = select_conversations(session, config.conversation_filter)
        if not conversation_ids:
            raise NoConversationsError(
                "no stored conversation matches the selection "
                f"({config.conversation_filter.describe()}): import dialogs with "
                "`supportbot import-dialogs` or widen the selection"
            )
        collection = collect_pairs(
            session, conversation_ids, context_turns=config.context_turns, redactor=redact
        )

    pairs = collection.pairs
    duplicates_removed = 0
    if embedder is not None and config.duplicate_similarity < 1.0 and pairs:
        deduplication = choose_best_answers(pairs, embedder, similarity=config.duplicate_similarity)
        pairs = deduplication.pairs
        duplicates_removed = deduplication.duplicates_removed

    splits = split_by_conversation(
        pairs, validation=config.validation, test=config.test, seed=config.seed
    )
    stats = write_dataset(
        splits,
        config.out_dir,
        system_prompt=config.system_prompt,
        drop_counts=collection.drop_counts,
        duplicates_removed=duplicates_removed,
        redactions=redactions,
    )
    logger.info(
        "Built fine-tuning dataset conversations=%d pairs=%s redactions=%d duration_s=%.1f",
        len(conversation_ids),
        stats.pairs,
        sum(redactions.values()),
        time.perf_counter() - started,
    )
    return stats


def build_dataset_from_files(
    paths: Sequence[Path],
    config: DatasetConfig,
    *,
    embedder: TextEmbedder | None = None,
    redactor: Redactor | None = None,
    dialog_format: str | None = None,
) -> DatasetStats:
    """Build the dataset from dialog files instead of the supportbot database.

    The files are imported, in any format that ``supportbot import-dialogs`` reads, into
    a temporary SQLite database that is deleted afterwards, so nothing is added to the
    team's conversation history. ``config.conversation_filter`` applies as usual.

    Raises:
        storage.importers.records.DialogFormatError: If a file is invalid.
        NoConversationsError: If no imported conversation matches the filter.
        OSError: If a file cannot be read or the output cannot be written.
    """
    with tempfile.TemporaryDirectory(prefix="supportbot-dataset-") as work_dir:
        engine = create_db_engine(f"sqlite:///{Path(work_dir) / 'dialogs.db'}")
        try:
            upgrade_schema(engine)
            session_factory = create_session_factory(engine)
            report = import_dialogs(session_factory, paths, format=dialog_format)
            logger.info("Imported dialog files for the dataset: %s", report.summary())
            return build_dataset(session_factory, config, embedder=embedder, redactor=redactor)
        finally:
            engine.dispose()
