"""Retrieval accuracy on StackFAQ: 125 StackExchange threads, 1,249 paraphrased questions."""

from __future__ import annotations

import json

import pytest

from retrieval.indexer import KnowledgeIndexer
from retrieval.retriever import HybridRetriever

pytestmark = pytest.mark.slow


def _load_stackfaq(path):
    threads = json.loads(path.read_text(encoding="utf-8"))["root"]["qapair"]
    entries, queries = [], []
    for thread in threads:
        answers = thread["answer"] if isinstance(thread["answer"], list) else [thread["answer"]]
        entries.append({"question": thread["question"], "answer": "\n\n".join(answers)})
        paraphrases = thread["rephr"] if isinstance(thread["rephr"], list) else [thread["rephr"]]
        # "*" marks an empty slot in the crowd-sourced paraphrases.
        queries.extend((text, thread["question"]) for text in paraphrases if text and text != "*")
    return entries, queries


def test_stackfaq_top1_accuracy(shared_data_dir, sqlite_session_factory, embedder, tmp_path):
    entries, queries = _load_stackfaq(shared_data_dir / "stackfaq" / "stackExchange-FAQ.json")
    faq_path = tmp_path / "stackfaq.jsonl"
    faq_path.write_text("\n".join(json.dumps(entry) for entry in entries), encoding="utf-8")
    KnowledgeIndexer(sqlite_session_factory, embedder, tmp_path / "index").index_paths([faq_path])
    retriever = HybridRetriever(sqlite_session_factory, embedder, tmp_path / "index")

    hits = sum(retriever.retrieve(query, top_k=1)[0].question == gold for query, gold in queries)

    assert len(queries) == 1249
    assert hits / len(queries) >= 0.90
