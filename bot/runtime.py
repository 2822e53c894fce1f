"""Assemble the serving components from settings: database, retriever, generator, bot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.dialog_manager import DialogManager
from bot.feedback import FeedbackService
from bot.generation.base import Generator, build_generator
from bot.handoff import HandoffService
from bot.model_switch import ModelSwitch
from bot.nlu_models import NluModels
from bot.templates import TemplateSet, load_templates
from bot.turn_lock import build_turn_lock
from bot.understanding import Understander
from retrieval.embedder import SentenceTransformerEmbedder
from retrieval.retriever import HybridRetriever
from storage.db import create_db_engine, create_session_factory, upgrade_schema
from storage.models import ModelKind, ModelVersion

logger = logging.getLogger(__name__)


@dataclass
class BotRuntime:
    """Everything a server process needs to answer customers."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    embedder: SentenceTransformerEmbedder
    retriever: HybridRetriever
    models: ModelSwitch
    dialog_manager: DialogManager
    handoff: HandoffService
    feedback: FeedbackService
    nlu_models: NluModels | None = None

    def close(self) -> None:
        """Stop watching the model registry and release database connections."""
        self.models.stop_watching()
        if self.nlu_models is not None:
            self.nlu_models.stop_watching()
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
    models = build_model_switch(settings, session_factory, base_generator=generator)
    nlu_models = build_nlu_models(session_factory) if settings.nlu.enabled else None
    templates = load_answer_templates(settings, nlu_models)
    turn_lock = build_turn_lock(engine, settings.home / "locks")
    dialog_manager = DialogManager(
        session_factory=session_factory,
        retriever=retriever,
        models=models,
        turn_lock=turn_lock,
        settings=settings,
        understander=Understander(nlu_models, settings.nlu) if nlu_models else None,
        templates=templates,
    )
    logger.info("Bot runtime ready in %.1f s", time.perf_counter() - started)
    return BotRuntime(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        embedder=embedder,
        retriever=retriever,
        models=models,
        dialog_manager=dialog_manager,
        nlu_models=nlu_models,
        handoff=HandoffService(session_factory, turn_lock, settings),
        feedback=FeedbackService(session_factory, turn_lock, settings),
    )


def load_answer_templates(settings: Settings, nlu_models: NluModels | None) -> TemplateSet | None:
    """Load the configured template file, checked against the intents the models know.

    Raises:
        bot.templates.TemplateError: If the file is missing or invalid.
    """
    path = settings.policy.templates_path
    if path is None:
        logger.info("No answer template file configured (policy.templates_path)")
        return None
    known = nlu_models.known_intents() if nlu_models is not None else None
    if known is None:
        logger.warning(
            "No intent model is active: template intents in %s are not checked and "
            "templates answer only once an intent model serves",
            path,
        )
    return load_templates(path, known_intents=known)


def build_nlu_models(session_factory: sessionmaker[Session]) -> NluModels:
    """Load the active intent and entity model versions of every language."""
    from nlu.intent.classifier import load_intent_classifier
    from nlu.taggers import load_tagger

    def load_intent(version: ModelVersion):
        return load_intent_classifier(version.path or "", version.version)

    def load_entities(version: ModelVersion):
        return load_tagger(version.path or "", version=version.version)

    return NluModels(session_factory, {ModelKind.INTENT: load_intent, ModelKind.NER: load_entities})


def build_model_switch(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    base_generator: Generator | None = None,
) -> ModelSwitch:
    """Build the switch that serves the active dialog model version, or the base model.

    Args:
        settings: Generation settings choose the base model and how versions load.
        session_factory: Sessions of the database with the model registry.
        base_generator: An already loaded base model; None loads it from the settings
            when no version is active.
    """
    generation = settings.generation

    def load_base() -> Generator:
        if base_generator is not None:
            return base_generator
        return build_generator(generation, settings.model_cache_dir)

    def load_version(version: ModelVersion) -> Generator:
        from bot.generation.transformers_backend import TransformersGenerator

        return TransformersGenerator(
            Path(version.path or ""),
            model_name=version.version,
            timeout_s=generation.timeout_s,
            repetition_penalty=generation.repetition_penalty,
        )

    # Versions are trained locally with transformers, so an 'openai' backend keeps
    # serving its remote model whichever version the registry marks active.
    return ModelSwitch(
        session_factory,
        load_base=load_base,
        load_version=load_version,
        use_registry=generation.backend == "transformers",
    )
