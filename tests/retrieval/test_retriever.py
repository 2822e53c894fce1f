from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from retrieval.faiss_index import read_manifest
from retrieval.indexer import KnowledgeIndexer
from retrieval.retriever import HybridRetriever
from storage.models import DocumentKind

pytestmark = pytest.mark.slow


@pytest.fixture
def index_dir(sqlite_session_factory, embedder, knowledge_dir, tmp_path):
    directory = tmp_path / "index"
    KnowledgeIndexer(sqlite_session_factory, embedder, directory).index_paths([knowledge_dir])
    return directory


@pytest.fixture
def retriever(sqlite_session_factory, embedder, index_dir):
    return HybridRetriever(sqlite_session_factory, embedder, index_dir)


def test_english_query_finds_section(retriever):
    passages = retriever.retrieve("I forgot my password", top_k=3)

    assert passages[0].title == "Account help > Resetting your password"
    assert passages[0].kind == DocumentKind.MARKDOWN
    assert passages[0].source.endswith("account.md")
    assert passages[0].language == "en"
    assert len(passages) == 3


def test_scores_combine_dense_and_lexical(retriever):
    passages = retriever.retrieve("How are refunds paid?", top_k=5)

    for passage in passages:
        assert 0.0 <= passage.dense_score <= 1.0
        assert 0.0 <= passage.lexical_score <= 1.0
        expected = 0.9 * passage.dense_score + 0.1 * passage.lexical_score
        assert passage.score == pytest.approx(expected)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_chinese_query_found_by_lexical_route(retriever):
    passages = retriever.retrieve("故宫的门票多少钱", top_k=3)

    assert passages[0].title == "北京景点常见问题 > 故宫门票"
    assert passages[0].lexical_score > 0.3
    expected = 0.1 * passages[0].dense_score + 0.9 * passages[0].lexical_score
    assert passages[0].score == pytest.approx(expected)


def test_faq_answer_returned_with_question(retriever):
    passages = retriever.retrieve("Can gift cards expire?", top_k=1, kinds=[DocumentKind.FAQ])

    assert passages[0].question == "Do gift cards expire?"
    assert passages[0].text == "Gift cards are valid for three years from the date of purchase."


def test_kinds_filter(retriever):
    passages = retriever.retrieve("refund", top_k=10, kinds=[DocumentKind.FAQ])

    assert passages
    assert {passage.kind for passage in passages} == {DocumentKind.FAQ}
    assert retriever.retrieve("refund", kinds=[DocumentKind.DIALOG]) == []


def test_blank_query_and_bad_top_k(retriever):
    assert retriever.retrieve("   ") == []
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        retriever.retrieve("refund", top_k=0)


def test_reload_picks_up_new_index(
    retriever, sqlite_session_factory, embedder, index_dir, knowledge_dir
):
    assert retriever.reload() is False
    (knowledge_dir / "warranty.md").write_text(
        "# Warranty\n\nEvery device has a two-year warranty.\n"
    )
    KnowledgeIndexer(sqlite_session_factory, embedder, index_dir).index_paths([knowledge_dir])

    assert retriever.reload() is True

    assert retriever.retrieve("How long is the warranty?", top_k=1)[0].title == "Warranty"
    assert retriever.reload() is False


def test_concurrent_queries_match_sequential(retriever):
    queries = [
        "I forgot my password",
        "故宫的门票多少钱",
        "Do you ship abroad?",
        "长城几点开门",
    ] * 5
    expected = [[p.chunk_id for p in retriever.retrieve(q, top_k=3)] for q in queries]

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(
            pool.map(lambda q: [p.chunk_id for p in retriever.retrieve(q, top_k=3)], queries)
        )

    assert found == expected


def test_corrupt_index_file_rebuilt(sqlite_session_factory, embedder, index_dir):
    manifest = read_manifest(index_dir)
    (index_dir / manifest.index_file).write_bytes(b"not a faiss index")

    retriever = HybridRetriever(sqlite_session_factory, embedder, index_dir)

    assert retriever.retrieve("I forgot my password", top_k=1)[0].title == (
        "Account help > Resetting your password"
    )
    assert read_manifest(index_dir).index_file != manifest.index_file


def test_empty_database_returns_nothing(sqlite_session_factory, embedder, tmp_path):
    retriever = HybridRetriever(sqlite_session_factory, embedder, tmp_path / "index")

    assert retriever.retrieve("anything") == []


def test_invalid_weight_rejected(sqlite_session_factory, embedder, tmp_path):
    with pytest.raises(ValueError, match="lexical_weight_en must be within 0..1"):
        HybridRetriever(sqlite_session_factory, embedder, tmp_path / "index", lexical_weight_en=1.5)
