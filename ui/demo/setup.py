"""Prepare the demo: locate or download public data, import dialogs, build the index.

It also trains the English intent model that the demo's answer templates need (see
:mod:`ui.demo.intents`), in about a second on 2 CPU cores, and the English entity tagger
that fills the templates' slots (see :mod:`ui.demo.entities`), in 5 to 7 s on one CPU
thread. Each is trained only when no model of its kind serves English yet.

The slice is sized so that the first start on 2 CPU cores takes minutes. It has two
SGD training files (256 English dialogs, 4,420 messages) and 300 CrossWOZ dialogs
(about 5,000 Chinese messages). The knowledge base has 125 StackFAQ threads, the 10
ABCD guideline flows and 2,549 CrossWOZ venues of one short chunk each. Every step is
idempotent, so later starts only check what is already stored.
"""

from __future__ import annotations

import logging
import time

from bot.config import Settings
from bot.runtime import build_embedder, open_database
from retrieval.errors import RetrievalError
from retrieval.indexer import KnowledgeIndexer
from storage.dialog_import import import_dialogs
from storage.errors import StorageError
from ui.demo.corpus import build_demo_corpus
from ui.demo.entities import ensure_demo_entity_model
from ui.demo.fetch import DemoDataError, ensure_demo_files
from ui.demo.intents import ensure_demo_intent_model
from ui.demo.sources import demo_files

logger = logging.getLogger(__name__)

SGD_FILES = 2
CROSSWOZ_DIALOGS = 300


class DemoSetupError(Exception):
    """The demo data could not be fetched, imported or indexed."""


def prepare_demo(settings: Settings) -> str:
    """Fetch, import and index the demo data; return a summary for the command line.

    Raises:
        DemoSetupError: If a step fails; the message names the step and the cause.
    """
    started = time.perf_counter()
    logger.info("Preparing demo data home=%s", settings.home)
    try:
        data_dir = ensure_demo_files(
            settings.data_dir,
            settings.home / "datasets",
            base_urls=[settings.demo_base_url] if settings.demo_base_url else None,
            files=demo_files(sgd_files=SGD_FILES),
        )
        corpus = build_demo_corpus(
            data_dir,
            settings.home / "demo",
            sgd_files=SGD_FILES,
            crosswoz_dialogs=CROSSWOZ_DIALOGS,
        )
    except (DemoDataError, OSError, ValueError) as error:
        raise DemoSetupError(f"preparing the demo files failed: {error}") from error

    lines = []
    engine, session_factory = open_database(settings)
    try:
        for dialog_slice in corpus.dialog_slices:
            report = import_dialogs(
                session_factory,
                list(dialog_slice.paths),
                format=dialog_slice.format,
                limit=dialog_slice.limit,
            )
            lines.append(f"[{dialog_slice.format}] {report.summary()}")

        sgd_paths = [
            path
            for dialog_slice in corpus.dialog_slices
            if dialog_slice.format == "sgd"
            for path in dialog_slice.paths
        ]
        if sgd_paths:
            lines.append(
                ensure_demo_intent_model(
                    session_factory,
                    settings.home / "models" / "intent",
                    sgd_paths,
                    corpus.faq_path,
                )
            )
            lines.append(
                ensure_demo_entity_model(
                    session_factory, settings.home / "models" / "ner", sgd_paths
                )
            )

        indexer = KnowledgeIndexer(
            session_factory,
            build_embedder(settings),
            settings.index_dir,
            chunk_max_chars=settings.retrieval.chunk_max_chars,
            chunk_overlap_chars=settings.retrieval.chunk_overlap_chars,
        )
        lines.append(indexer.index_paths([corpus.knowledge_dir]).summary())
        past = indexer.index_past_answers(min_answer_words=settings.retrieval.past_answer_min_words)
        lines.append(past.summary(subject="Indexed past answers of conversations"))
    except (StorageError, RetrievalError, OSError, ValueError) as error:
        raise DemoSetupError(
            f"importing, training on or indexing the demo data failed: {error}"
        ) from error
    finally:
        engine.dispose()

    lines.append(f"Demo data ready in {time.perf_counter() - started:.0f} s.")
    return "\n".join(lines)
