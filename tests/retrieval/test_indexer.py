from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from retrieval import faiss_index
from retrieval.faiss_index import FaissPassageIndex, read_manifest
from retrieval.indexer import KnowledgeIndexer
from retrieval.retriever import HybridRetriever
from storage import repository
from storage.models import Chunk, DocumentKind, KnowledgeDocument, Role
from tests.retrieval.conftest import RecordingEmbedder

pytestmark = pytest.mark.slow


def _stored_state(session_factory):
    """Return {source: (checksum, [chunk ids])} of every stored document."""
    with session_factory() as session:
        return {
            document.source: (document.checksum, [chunk.id for chunk in document.chunks])
            for document in repository.list_documents(session)
        }


def _stored_chunk_ids(session_factory) -> list[int]:
    with session_factory() as session:
        return sorted(session.scalars(select(Chunk.id)))


def _index_ids(index_dir) -> list[int]:
    index, _ = FaissPassageIndex.load(index_dir)
    return index.ids.tolist()


def test_index_paths_stores_chunks_and_index(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")

    report = indexer.index_paths([knowledge_dir])

    assert report.documents_added == 6
    assert report.chunks_embedded == len(recording_embedder.embedded)
    with session_factory() as session:
        chunks = list(session.scalars(select(Chunk)))
    assert len(chunks) == report.chunks_embedded
    assert all(len(chunk.embedding) == 384 * 4 for chunk in chunks)
    assert {chunk.embedding_model for chunk in chunks} == {"packaged:all-MiniLM-L6-v2"}
    assert _index_ids(tmp_path / "index") == _stored_chunk_ids(session_factory)
    assert read_manifest(tmp_path / "index").count == len(chunks)


def test_faq_chunks_embed_the_question(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")

    indexer.index_paths([knowledge_dir / "billing.csv"])

    assert recording_embedder.embedded == [
        "Which payment methods do you accept?",
        "Can I get an invoice for my order?",
    ]


def test_reindex_unchanged_embeds_nothing(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_paths([knowledge_dir])
    before = _stored_state(session_factory)
    recording_embedder.embedded.clear()

    report = indexer.index_paths([knowledge_dir])

    assert report.documents_unchanged == 6
    assert report.documents_added + report.documents_changed + report.documents_removed == 0
    assert report.chunks_embedded == 0
    assert recording_embedder.embedded == []
    assert _stored_state(session_factory) == before


def test_changed_document_reembedded(session_factory, recording_embedder, knowledge_dir, tmp_path):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_paths([knowledge_dir])
    recording_embedder.embedded.clear()
    (knowledge_dir / "shipping.txt").write_text("Shipping is free for orders above 50 euros.\n")

    report = indexer.index_paths([knowledge_dir])

    assert report.documents_changed == 1
    assert report.documents_unchanged == 5
    assert recording_embedder.embedded == ["shipping\nShipping is free for orders above 50 euros."]
    assert _index_ids(tmp_path / "index") == _stored_chunk_ids(session_factory)


def test_deleted_file_removed(session_factory, recording_embedder, knowledge_dir, tmp_path):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_paths([knowledge_dir])
    (knowledge_dir / "returns.html").unlink()

    report = indexer.index_paths([knowledge_dir])

    assert report.documents_removed == 1
    assert str(knowledge_dir / "returns.html") not in _stored_state(session_factory)
    assert _index_ids(tmp_path / "index") == _stored_chunk_ids(session_factory)


def test_file_given_alone_removes_nothing(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_paths([knowledge_dir])

    report = indexer.index_paths([knowledge_dir / "account.md"])

    assert report.documents_removed == 0
    assert report.documents_unchanged == 1
    assert len(_stored_state(session_factory)) == 6


def test_chunk_settings_change_rechunks(sqlite_session_factory, embedder, knowledge_dir, tmp_path):
    KnowledgeIndexer(sqlite_session_factory, embedder, tmp_path / "index").index_paths(
        [knowledge_dir]
    )

    report = KnowledgeIndexer(
        sqlite_session_factory,
        embedder,
        tmp_path / "index",
        chunk_max_chars=200,
        chunk_overlap_chars=40,
    ).index_paths([knowledge_dir])

    assert report.documents_changed == 6
    with sqlite_session_factory() as session:
        texts = list(session.scalars(select(Chunk.text).where(Chunk.question.is_(None))))
    assert max(len(text) for text in texts) <= 200


def test_embedding_failure_leaves_database_and_index(
    sqlite_session_factory, recording_embedder, knowledge_dir, tmp_path
):
    index_dir = tmp_path / "index"
    KnowledgeIndexer(sqlite_session_factory, recording_embedder, index_dir).index_paths(
        [knowledge_dir]
    )
    state_before = _stored_state(sqlite_session_factory)
    manifest_before = read_manifest(index_dir)
    (knowledge_dir / "account.md").write_text(
        "# Account help\n\nAccounts are now managed by the parent company.\n"
    )
    (knowledge_dir / "warranty.md").write_text(
        "# Warranty\n\nEvery device has a two-year warranty.\n"
    )
    (knowledge_dir / "shipping.txt").write_text("Shipping is free for orders above 50 euros.\n")
    # Three new chunks in batches of two: the first batch succeeds, the second fails.
    recording_embedder.fail_after_texts = len(recording_embedder.embedded) + 2

    with pytest.raises(RuntimeError, match="simulated embedding failure"):
        KnowledgeIndexer(sqlite_session_factory, recording_embedder, index_dir).index_paths(
            [knowledge_dir]
        )

    assert _stored_state(sqlite_session_factory) == state_before
    assert read_manifest(index_dir) == manifest_before
    recording_embedder.fail_after_texts = None
    recording_embedder.embedded.clear()
    retriever = HybridRetriever(sqlite_session_factory, recording_embedder, index_dir)
    passages = retriever.retrieve("How do I reset my password?", top_k=1)
    assert passages[0].title == "Account help > Resetting your password"
    assert recording_embedder.embedded == ["How do I reset my password?"]


def test_crash_before_index_save_rebuilds_from_stored_embeddings(
    sqlite_session_factory, recording_embedder, knowledge_dir, tmp_path, monkeypatch
):
    index_dir = tmp_path / "index"
    KnowledgeIndexer(sqlite_session_factory, recording_embedder, index_dir).index_paths(
        [knowledge_dir]
    )
    manifest_before = read_manifest(index_dir)
    (knowledge_dir / "warranty.md").write_text(
        "# Warranty\n\nEvery device has a two-year warranty.\n"
    )

    def fail_save(*args, **kwargs):
        raise OSError("simulated crash while saving the index")

    with monkeypatch.context() as patch:
        patch.setattr(faiss_index.FaissPassageIndex, "save", fail_save)
        with pytest.raises(OSError, match="simulated crash"):
            KnowledgeIndexer(sqlite_session_factory, recording_embedder, index_dir).index_paths(
                [knowledge_dir]
            )

    assert read_manifest(index_dir) == manifest_before
    assert str(knowledge_dir / "warranty.md") in _stored_state(sqlite_session_factory)
    recording_embedder.embedded.clear()
    retriever = HybridRetriever(sqlite_session_factory, recording_embedder, index_dir)
    passages = retriever.retrieve("How long is the warranty on a device?", top_k=1)
    assert passages[0].title == "Warranty"
    # Rebuilt from stored vectors: only the query was embedded.
    assert recording_embedder.embedded == ["How long is the warranty on a device?"]
    assert _index_ids(index_dir) == _stored_chunk_ids(sqlite_session_factory)


def test_model_change_reembeds_stored_chunks(
    sqlite_session_factory, embedder, knowledge_dir, tmp_path
):
    index_dir = tmp_path / "index"
    old_model = RecordingEmbedder(embedder, name="old-model")
    KnowledgeIndexer(sqlite_session_factory, old_model, index_dir).index_paths([knowledge_dir])
    chunk_count = len(_stored_chunk_ids(sqlite_session_factory))
    new_model = RecordingEmbedder(embedder)

    HybridRetriever(sqlite_session_factory, new_model, index_dir)

    assert len(new_model.embedded) == chunk_count
    assert read_manifest(index_dir).embedding_model == "packaged:all-MiniLM-L6-v2"
    with sqlite_session_factory() as session:
        assert set(session.scalars(select(Chunk.embedding_model))) == {"packaged:all-MiniLM-L6-v2"}


def _add_conversation(session_factory, external_id, turns):
    with session_factory.begin() as session:
        conversation = repository.create_conversation(session, external_id=external_id)
        for role, text in turns:
            repository.add_message(session, conversation=conversation, role=role, text=text)


REFUND_TURNS = [
    (Role.CUSTOMER, "Hello"),
    (Role.CUSTOMER, "When will I get my refund?"),
    (Role.AGENT, "Refunds reach your card within five business days after we receive the item."),
    (Role.CUSTOMER, "ok thanks"),
    (Role.AGENT, "Bye!"),
]


def test_index_past_answers_builds_pairs(session_factory, recording_embedder, tmp_path):
    _add_conversation(session_factory, "c-1", REFUND_TURNS)
    _add_conversation(session_factory, "c-2", [(Role.CUSTOMER, "hi"), (Role.AGENT, "Hello!")])
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")

    report = indexer.index_past_answers(min_answer_words=6)

    assert report.documents_added == 1
    assert report.chunks_embedded == 1
    assert recording_embedder.embedded == ["Hello\nWhen will I get my refund?"]
    with session_factory() as session:
        document = repository.get_document_by_source(session, "conversation:c-1")
        assert document.kind == DocumentKind.DIALOG
        assert document.title == "Conversation c-1"
        assert [chunk.text for chunk in document.chunks] == [REFUND_TURNS[2][1]]
        assert repository.get_document_by_source(session, "conversation:c-2") is None


def test_index_past_answers_incremental(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    _add_conversation(session_factory, "c-1", REFUND_TURNS)
    _add_conversation(session_factory, "c-3", REFUND_TURNS[:3])
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_paths([knowledge_dir / "account.md"])
    indexer.index_past_answers()
    recording_embedder.embedded.clear()
    with session_factory.begin() as session:
        conversation = repository.get_conversation_by_external_id(session, "c-1")
        repository.add_message(
            session, conversation=conversation, role=Role.CUSTOMER, text="Can I return shoes?"
        )
        repository.add_message(
            session,
            conversation=conversation,
            role=Role.AGENT,
            text="Yes, shoes can be returned within 30 days.",
        )
        session.delete(repository.get_conversation_by_external_id(session, "c-3"))

    report = indexer.index_past_answers()

    assert (report.documents_changed, report.documents_removed, report.documents_unchanged) == (
        1,
        1,
        0,
    )
    assert sorted(recording_embedder.embedded) == [
        "Can I return shoes?",
        "Hello\nWhen will I get my refund?",
    ]
    sources = set(_stored_state(session_factory))
    assert sources == {"conversation:c-1", str(knowledge_dir / "account.md")}
    assert _index_ids(tmp_path / "index") == _stored_chunk_ids(session_factory)


def test_index_paths_keeps_past_answers(
    session_factory, recording_embedder, knowledge_dir, tmp_path
):
    _add_conversation(session_factory, "c-1", REFUND_TURNS)
    indexer = KnowledgeIndexer(session_factory, recording_embedder, tmp_path / "index")
    indexer.index_past_answers()

    indexer.index_paths([knowledge_dir])

    with session_factory() as session:
        kinds = set(session.scalars(select(KnowledgeDocument.kind)))
    assert DocumentKind.DIALOG in kinds


def test_negative_min_answer_words_rejected(sqlite_session_factory, embedder, tmp_path):
    indexer = KnowledgeIndexer(sqlite_session_factory, embedder, tmp_path / "index")

    with pytest.raises(ValueError, match="min_answer_words must be 0 or more"):
        indexer.index_past_answers(min_answer_words=-1)


def test_stored_vectors_match_fresh_embeddings(
    sqlite_session_factory, embedder, knowledge_dir, tmp_path
):
    KnowledgeIndexer(sqlite_session_factory, embedder, tmp_path / "index").index_paths(
        [knowledge_dir / "billing.csv"]
    )

    with sqlite_session_factory() as session:
        chunk = session.scalars(select(Chunk).order_by(Chunk.position)).first()
    stored = np.frombuffer(chunk.embedding, dtype=np.float32)
    np.testing.assert_allclose(stored, embedder.embed([chunk.question])[0], atol=1e-5)
