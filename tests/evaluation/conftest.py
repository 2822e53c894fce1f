"""A supportbot home with the evaluation dialogs imported and the test knowledge base indexed.

``tests/fixtures/eval/dialogues_eval.json`` is a small SGD-format file written for these
tests. With the default split (validation 0.1, test 0.1, seed 42) its dialogues fall into:

- test (held out): ``sgd:eval_011`` (a kettle error whose answer exists only in that
  dialogue), ``sgd:eval_026`` (password reset, then a request for a person) and
  ``sgd:eval_031`` (refund, then a restaurant question labelled ``FindRestaurants``);
- train: ``sgd:eval_000``; validation: ``sgd:eval_007``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Settings
from bot.runtime import open_database
from finetune.intent.training import IntentTrainingOptions, train_intent_classifier
from finetune.nlu_data.intent_readers import read_intent_file
from retrieval.indexer import KnowledgeIndexer
from storage import model_registry
from storage.dialog_import import import_dialogs
from storage.models import ModelKind, ModelStatus

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVAL_DIALOGS = FIXTURES / "eval" / "dialogues_eval.json"
HELD_OUT = ["sgd:eval_011", "sgd:eval_026", "sgd:eval_031"]
KETTLE_ANSWER = (
    "Error E7 on the Zephyr K2 means the water sensor is still wet: unplug the kettle and "
    "let it dry for two hours, then it resets itself."
)


def prepare_eval_home(home: Path, embedder, packaged_generator_path: Path) -> Settings:
    """Import the evaluation dialogs, index the knowledge base and its past answers."""
    settings = Settings(home=home, nlu={"reload_interval_s": 0, "timezone": "UTC"})
    # The runtime finds the converted packaged model here instead of converting it again.
    settings.model_cache_dir.mkdir(parents=True)
    (settings.model_cache_dir / packaged_generator_path.name).symlink_to(packaged_generator_path)
    engine, session_factory = open_database(settings)
    import_dialogs(session_factory, [EVAL_DIALOGS], format="sgd", show_progress=False)
    indexer = KnowledgeIndexer(session_factory, embedder, settings.index_dir)
    indexer.index_paths([FIXTURES / "kb" / "en"])
    indexer.index_past_answers(min_answer_words=settings.retrieval.past_answer_min_words)
    engine.dispose()
    return settings


def register_dialog_copy(
    session_factory: sessionmaker[Session], name: str, source: Path, target: Path
) -> None:
    """Register a ready dialog version whose folder links to the files of ``source``."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        (target / item.name).symlink_to(item)
    with session_factory.begin() as session:
        model_registry.register_version(
            session, kind=ModelKind.DIALOG, version=name, base_model="packaged copy"
        )
        model_registry.finish_version(session, name, status=ModelStatus.READY, path=str(target))


def activate_fixture_intent_model(session_factory: sessionmaker[Session], out_dir: Path) -> None:
    """Train the character n-gram intent model on the English NLU fixtures and activate it."""
    result = train_intent_classifier(
        read_intent_file(FIXTURES / "nlu" / "intents_en_train.csv"),
        read_intent_file(FIXTURES / "nlu" / "intents_en_validation.csv"),
        [],
        out_dir,
        IntentTrainingOptions(backend="charngram"),
    )
    with session_factory.begin() as session:
        model_registry.register_version(
            session,
            kind=ModelKind.INTENT,
            version="intent-en-test",
            base_model="test",
            language="en",
        )
        model_registry.finish_version(
            session, "intent-en-test", status=ModelStatus.READY, path=str(result.model_dir)
        )
        model_registry.activate_version(session, "intent-en-test", reason="test")


def snapshot_database(engine: Engine) -> dict[str, list[tuple]]:
    """Return every row of every table, ordered, to compare a database before and after."""
    tables = sorted(name for name in inspect(engine).get_table_names() if name != "alembic_version")
    with engine.connect() as connection:
        return {
            table: [
                tuple(row)
                for row in connection.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))
            ]
            for table in tables
        }
