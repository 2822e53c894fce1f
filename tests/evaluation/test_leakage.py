"""The retriever wrapper that keeps held-out conversations' own answers out of a replay."""

from __future__ import annotations

import pytest

from bot.runtime import open_database
from evaluation.leakage import HeldOutExcludingRetriever, find_past_answer_documents
from retrieval.retriever import HybridRetriever
from storage.models import DocumentKind
from tests.evaluation.conftest import HELD_OUT, KETTLE_ANSWER, prepare_eval_home

pytestmark = pytest.mark.slow

STORED_KINDS = (DocumentKind.FAQ, DocumentKind.DIALOG)
KETTLE_QUESTION = "My Zephyr K2 kettle shows error E7 after descaling, what does that mean?"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, packaged_embedder, packaged_generator_path):
    settings = prepare_eval_home(
        tmp_path_factory.mktemp("home"), packaged_embedder, packaged_generator_path
    )
    engine, session_factory = open_database(settings)
    retriever = HybridRetriever(session_factory, packaged_embedder, settings.index_dir)
    yield session_factory, retriever
    engine.dispose()


def test_documents_of_held_out_found(indexed):
    session_factory, retriever = indexed

    excluded = find_past_answer_documents(session_factory, [*HELD_OUT, "sgd:not-imported"])

    every_stored = retriever.retrieve(KETTLE_QUESTION, top_k=50, kinds=[DocumentKind.DIALOG])
    held_out_sources = {f"conversation:{external_id}" for external_id in HELD_OUT}
    expected = {p.document_id for p in every_stored if p.source in held_out_sources}
    assert excluded.document_ids == expected
    assert len(excluded.document_ids) == 3
    assert excluded.chunk_count == sum(1 for p in every_stored if p.source in held_out_sources)


def test_own_answer_not_returned(indexed):
    session_factory, retriever = indexed
    filtered = HeldOutExcludingRetriever(
        retriever, find_past_answer_documents(session_factory, HELD_OUT)
    )

    unfiltered = retriever.retrieve(KETTLE_QUESTION, top_k=3, kinds=STORED_KINDS)
    passages = filtered.retrieve(KETTLE_QUESTION, top_k=3, kinds=STORED_KINDS)

    assert unfiltered[0].text == KETTLE_ANSWER
    assert len(passages) == 3
    assert all(p.document_id not in filtered.excluded.document_ids for p in passages)
    assert KETTLE_ANSWER not in [p.text for p in passages]
    assert filtered.blocked_searches == 1


def test_ranking_of_kept_passages_unchanged(indexed):
    session_factory, retriever = indexed
    filtered = HeldOutExcludingRetriever(
        retriever, find_past_answer_documents(session_factory, HELD_OUT)
    )

    every_passage = retriever.retrieve(KETTLE_QUESTION, top_k=50, kinds=STORED_KINDS)
    kept = [p for p in every_passage if p.document_id not in filtered.excluded.document_ids]
    passages = filtered.retrieve(KETTLE_QUESTION, top_k=len(kept), kinds=STORED_KINDS)

    assert [p.chunk_id for p in passages] == [p.chunk_id for p in kept]


def test_passage_kinds_pass_through(indexed):
    session_factory, retriever = indexed
    filtered = HeldOutExcludingRetriever(
        retriever, find_past_answer_documents(session_factory, HELD_OUT)
    )
    kinds = (DocumentKind.MARKDOWN, DocumentKind.FAQ)

    passages = filtered.retrieve("How do I reset my password?", top_k=2, kinds=kinds)

    assert [p.chunk_id for p in passages] == [
        p.chunk_id for p in retriever.retrieve("How do I reset my password?", top_k=2, kinds=kinds)
    ]
    assert filtered.blocked_searches == 0
    assert filtered.embedder is retriever.embedder
