"""Assemble the serving components from settings: database, retriever, generator, bot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.dialog_manager import DialogManager
from bot.generation.base import Generator, build_generator
from bot.turn_lock import build_turn_lock
from retrieval.embedder import SentenceTransformerEmbedder
from retrieval.retriever import HybridRetriever
from storage.db import create_db_engine, create_session_factory, upgrade_schema

logger = logging.getLogger(__name__)


@dataclass
class BotRuntime:
    """Everything a server process needs to answer customers."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    embedder: SentenceTransformerEmbedder
    retriever: HybridRetriever
    generator: Generator
    dialog_manager: DialogManager

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()


def open_database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    """Create the engine, bring the schema up to date and return a session factory.

    Raises:
        storage.errors.DatabaseUnavailableError: If the database cannot be reached.
    """
    engine = create_db_engine(settings.resolved_database_url)
    upgrade_schema(engine)
    return engine, create_session_factory(engine)


def build_embedder(settings: Settings) -> SentenceTransformerEmbedder:
    """Load the configured sentence-transformers model."""
    return SentenceTransformerEmbedder(
        settings.retrieval.embedding_model, batch_size=settings.retrieval.embedding_batch_size
    )


def build_runtime(
    settings: Settings,
    *,
    embedder: SentenceTransformerEmbedder | None = None,
    generator: Generator | None = None,
) -> BotRuntime:
    """Build the serving components; pass ``embedder`` or ``generator`` to reuse loaded ones.

    Raises:
        storage.errors.DatabaseUnavailableError: If the database cannot be reached.
        retrieval.errors.EmbeddingModelError: If the embedding model cannot be loaded.
        bot.generation.base.ModelUnavailableError: If the dialog model cannot be loaded.
    """
    started = time.perf_counter()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine, session_factory = open_database(settings)
    embedder = embedder or build_embedder(settings)
    retriever = HybridRetriever(
        session_factory,
        embedder,
        settings.index_dir,
        lexical_weight_en=settings.retrieval.lexical_weight_en,
        lexical_weight_zh=settings.retrieval.lexical_weight_zh,
    )
    generator = generator or build_generator(settings.generation, settings.model_cache_dir)
    dialog_manager = DialogManager(
        session_factory=session_factory,
        retriever=retriever,
        generator=generator,
        turn_lock=build_turn_lock(engine, settings.home / "locks"),
        settings=settings,
    )
    logger.info("Bot runtime ready in %.1f s", time.perf_counter() - started)
    return BotRuntime(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        embedder=embedder,
        retriever=retriever,
        generator=generator,
        dialog_manager=dialog_manager,
    )
