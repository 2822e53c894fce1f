"""The demo's answer template file and the settings that serve it."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.config import Settings
from bot.runtime import open_database
from bot.templates import TemplateError, load_templates
from nlu.intent.classifier import load_intent_classifier
from storage import model_registry
from storage.models import ModelKind

logger = logging.getLogger(__name__)

DEMO_TEMPLATES_PATH = Path(__file__).with_name("templates.yaml")


def with_demo_templates(settings: Settings) -> Settings:
    """Return ``settings`` with ``policy.templates_path`` set to the demo template file.

    Settings that already name a template file are returned unchanged. The demo file is
    set only when it loads against the labels of the active intent models. Otherwise a
    warning with the reason is logged, and the server starts without templates.
    """
    if settings.policy.templates_path is not None:
        logger.info("Keeping configured template file path=%s", settings.policy.templates_path)
        return settings

    labels = active_intent_labels(settings)
    try:
        load_templates(DEMO_TEMPLATES_PATH, known_intents=labels)
    except TemplateError as error:
        logger.warning("Serving the demo without answer templates: %s", error)
        return settings

    policy = settings.policy.model_copy(update={"templates_path": DEMO_TEMPLATES_PATH})
    return settings.model_copy(update={"policy": policy})


def active_intent_labels(settings: Settings) -> set[str]:
    """Return the labels of every active intent model version, empty when none is active."""
    engine, session_factory = open_database(settings)
    try:
        with session_factory() as session:
            active = model_registry.get_active_versions(session, ModelKind.INTENT)
            versions = [(row.version, row.path) for row in active.values()]
    finally:
        engine.dispose()

    labels: set[str] = set()
    for version, path in versions:
        try:
            labels.update(load_intent_classifier(path or "", version).labels)
        except (OSError, ValueError) as error:
            logger.warning("Failed to load intent model version=%s: %s", version, error)
    return labels
