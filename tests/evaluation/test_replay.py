"""Replays of the held-out evaluation dialogs through the real bot on SQLite.

The packaged embedder and SmolLM2 answer every turn. One module-level run replays the
base model; a second home compares the base model with a registered copy of it while an
intent model serves and keeps its replay conversations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.runtime import open_database
from evaluation.held_out import HeldOutSelection
from evaluation.runner import EvalConfig, run_evaluation
from retrieval.retriever import HybridRetriever
from storage import model_registry
from storage.models import Chunk, Conversation, DocumentKind, KnowledgeDocument, ModelKind
from tests.evaluation.conftest import (
    HELD_OUT,
    KETTLE_ANSWER,
    activate_fixture_intent_model,
    prepare_eval_home,
    register_dialog_copy,
    snapshot_database,
)

pytestmark = pytest.mark.slow

KETTLE_QUESTION = "My Zephyr K2 kettle shows error E7 after descaling, what does that mean?"


def _read_turns(out_dir: Path) -> list[dict]:
    lines = (out_dir / "turns.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _dialog_turns(rows: list[dict], version: str, dialog: str) -> list[dict]:
    return [row for row in rows if row["version"] == version and row["dialog"] == dialog]


def _count_past_answer_chunks(settings) -> int:
    sources = [f"conversation:{external_id}" for external_id in HELD_OUT]
    engine, session_factory = open_database(settings)
    with session_factory() as session:
        count = session.scalar(
            select(func.count(Chunk.id))
            .join(KnowledgeDocument, Chunk.document_id == KnowledgeDocument.id)
            .where(KnowledgeDocument.source.in_(sources))
        )
    engine.dispose()
    return count


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, packaged_embedder, packaged_generator, packaged_generator_path):
    """The base model replays the held-out dialogs; the database is snapshotted around it."""
    home = tmp_path_factory.mktemp("home")
    settings = prepare_eval_home(home, packaged_embedder, packaged_generator_path)
    engine, _ = open_database(settings)
    before = snapshot_database(engine)

    result = run_evaluation(
        settings,
        EvalConfig(out_dir=home / "eval", versions=("base",)),
        embedder=packaged_embedder,
        base_generator=packaged_generator,
    )

    after = snapshot_database(engine)
    engine.dispose()
    return settings, result, before, after


@pytest.fixture(scope="module")
def compared_run(tmp_path_factory, packaged_embedder, packaged_generator, packaged_generator_path):
    """Base and a registered copy replay with an English intent model; replays are kept."""
    home = tmp_path_factory.mktemp("home")
    settings = prepare_eval_home(home, packaged_embedder, packaged_generator_path)
    engine, session_factory = open_database(settings)
    register_dialog_copy(
        session_factory, "dialog-copy", packaged_generator_path, home / "models" / "copy"
    )
    activate_fixture_intent_model(session_factory, home / "intent")
    engine.dispose()

    result = run_evaluation(
        settings,
        EvalConfig(out_dir=home / "eval", versions=("base", "dialog-copy"), keep=True),
        embedder=packaged_embedder,
        base_generator=packaged_generator,
    )
    return settings, result


class TestBaseReplay:
    def test_database_unchanged(self, base_run):
        _, _, before, after = base_run

        assert before["conversations"]
        assert after == before

    def test_every_held_out_turn_replayed(self, base_run):
        _, result, _, _ = base_run
        rows = _read_turns(result.metrics.parent)

        assert result.figures["dialogs"] == 3
        assert result.figures["turns"] == 8
        assert [(row["dialog"], row["turn"]) for row in rows] == [
            ("sgd:eval_011", 0),
            ("sgd:eval_011", 1),
            ("sgd:eval_026", 0),
            ("sgd:eval_026", 1),
            ("sgd:eval_026", 2),
            ("sgd:eval_026", 3),
            ("sgd:eval_031", 0),
            ("sgd:eval_031", 1),
        ]

    def test_own_answer_would_leak_without_filter(self, base_run, packaged_embedder):
        settings, _, _, _ = base_run
        engine, session_factory = open_database(settings)
        retriever = HybridRetriever(session_factory, packaged_embedder, settings.index_dir)

        passages = retriever.retrieve(
            KETTLE_QUESTION, top_k=1, kinds=(DocumentKind.FAQ, DocumentKind.DIALOG)
        )
        engine.dispose()

        assert passages[0].source == "conversation:sgd:eval_011"
        assert passages[0].text == KETTLE_ANSWER
        assert passages[0].score >= settings.retrieval.answer_threshold

    def test_own_answer_excluded_from_replay(self, base_run):
        settings, result, _, _ = base_run
        rows = _read_turns(result.metrics.parent)
        kettle = _dialog_turns(rows, "base", "sgd:eval_011")[0]
        excluded = result.figures["excluded_past_answers"]

        assert kettle["reference"] == KETTLE_ANSWER
        assert kettle["reply"] != KETTLE_ANSWER
        assert kettle["reason"] != "stored_answer"
        assert excluded == {"documents": 3, "chunks": _count_past_answer_chunks(settings)}
        assert result.figures["versions"]["base"]["blocked_searches"] >= 1

    def test_handoff_mid_dialog_forwards_rest(self, base_run):
        _, result, _, _ = base_run
        rows = _dialog_turns(_read_turns(result.metrics.parent), "base", "sgd:eval_026")
        summary = result.figures["versions"]["base"]

        assert [row["path"] for row in rows[1:]] == ["handoff", "forwarded", "forwarded"]
        assert rows[1]["reason"] == "customer_request"
        assert rows[2]["reply"] == ""
        assert rows[2]["similarity"] is None
        assert summary["paths"]["forwarded"] == 2
        assert summary["dialogs_without_handoff"] <= 2
        assert summary["turn_no_handoff_rate"] <= 5 / 8

    def test_no_intent_model_reported(self, base_run):
        _, result, _, _ = base_run
        intent = result.figures["versions"]["base"]["intent"]

        assert intent["status"] == "no intent model"
        assert intent["gold_turns"] == 3
        assert "| intent accuracy (gold-labelled turns) | no intent model |" in (
            result.report.read_text(encoding="utf-8")
        )

    def test_report_files_written(self, base_run):
        _, result, _, _ = base_run
        out_dir = result.report.parent
        report = result.report.read_text(encoding="utf-8")
        figures = json.loads(result.metrics.read_text(encoding="utf-8"))

        assert "| figure | base |" in report
        assert "were excluded from retrieval" in report
        assert figures["versions"]["base"]["turns"] == 8
        assert figures["selection"]["test"] == 0.1
        for name in ("paths.png", "latency.png", "similarity.png"):
            assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestComparedVersions:
    def test_report_has_column_per_version(self, compared_run):
        _, result = compared_run
        versions = result.figures["versions"]

        assert list(versions) == ["base", "dialog-copy"]
        assert versions["base"]["dialog_versions"] == ["base"]
        assert versions["dialog-copy"]["dialog_versions"] == ["dialog-copy"]
        assert "| figure | base | dialog-copy |" in result.report.read_text(encoding="utf-8")

    def test_versions_replay_same_turns(self, compared_run):
        _, result = compared_run
        rows = _read_turns(result.metrics.parent)
        base = [row for row in rows if row["version"] == "base"]
        copy = [row for row in rows if row["version"] == "dialog-copy"]

        assert [(r["dialog"], r["turn"]) for r in base] == [(r["dialog"], r["turn"]) for r in copy]
        # Same weights and greedy decoding, so the copy writes the same replies.
        assert [r["reply"] for r in base] == [r["reply"] for r in copy]

    def test_active_version_unchanged(self, compared_run):
        settings, _ = compared_run
        engine, session_factory = open_database(settings)
        with session_factory() as session:
            active = model_registry.get_active_version(session, ModelKind.DIALOG)
        engine.dispose()

        assert active is None

    def test_intent_accuracy_on_gold_turns(self, compared_run):
        _, result = compared_run
        intent = result.figures["versions"]["base"]["intent"]
        rows = _read_turns(result.metrics.parent)
        refund = _dialog_turns(rows, "base", "sgd:eval_031")

        # Gold-labelled turns answered by the bot: the password question, the refund
        # question (both verbatim in the intent training data) and the restaurant
        # question, whose label FindRestaurants the model does not know.
        assert intent["status"] == "ok"
        assert intent["turns"] == 3
        assert refund[0]["predicted_intent"] == "request_refund"
        assert refund[1]["predicted_intent"] != "FindRestaurants"
        assert intent["accuracy"] == pytest.approx(2 / 3)
        assert intent["versions"] == ["intent-en-test"]

    def test_kept_replays_stored(self, compared_run):
        settings, _ = compared_run
        engine, session_factory = open_database(settings)
        with session_factory() as session:
            external_ids = list(
                session.scalars(
                    select(Conversation.external_id).where(Conversation.channel == "eval")
                )
            )
            total = session.scalar(select(func.count()).select_from(Conversation))
        engine.dispose()

        assert len(external_ids) == 6
        assert all(external_id.startswith("eval:") for external_id in external_ids)
        assert total == 5 + 6


def test_long_turn_skipped(
    tmp_path, packaged_embedder, packaged_generator, packaged_generator_path
):
    settings = prepare_eval_home(tmp_path / "home", packaged_embedder, packaged_generator_path)
    # The kettle question has 73 characters and its follow-up 22.
    settings = settings.model_copy(update={"max_message_chars": 40})

    result = run_evaluation(
        settings,
        EvalConfig(
            out_dir=tmp_path / "eval",
            selection=HeldOutSelection(limit=1),
            versions=("base",),
        ),
        embedder=packaged_embedder,
        base_generator=packaged_generator,
    )

    rows = _read_turns(tmp_path / "eval")
    summary = result.figures["versions"]["base"]
    assert result.figures["dialogs"] == 1
    assert [row["dialog"] for row in rows] == [HELD_OUT[0]] * 2
    assert [row["path"] for row in rows][0] == "skipped"
    assert rows[0]["reason"] == "invalid_message"
    assert rows[1]["path"] != "skipped"
    assert summary["skipped_turns"] == 1
    assert summary["turns"] == 1
