"""StackFAQ retrieval accuracy: dense only, lexical only and the hybrid at several weights.

Indexes the 125 StackFAQ threads as FAQ entries (question = thread title, answer = the
thread's answers joined), then runs the 1,249 crowd-sourced paraphrases as queries and counts how
often the paraphrased thread is ranked first (top-1) or among the first five (top-5).

- dense only: HybridRetriever with lexical_weight_en=0;
- dense, title + answers: the same model with each thread's title and answers embedded
  together instead of the title alone (numpy cosine top-k; not what the indexer does);
- lexical BM25: LexicalIndex ranked by BM25;
- lexical share: LexicalIndex ranked by its normalised score, as the hybrid uses it;
- hybrid w: HybridRetriever with lexical_weight_en=w (0.1 is the default).

Query embeddings are computed once and reused across the retrievers, so the latency
column is the first (uncached) pass of the dense-only run.

Usage:
    SUPPORTBOT_DATA_DIR=/path/to/data python bench/bench_retrieval.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from retrieval.chunker import chunk_lexical_text  # noqa: E402
from retrieval.embedder import SentenceTransformerEmbedder  # noqa: E402
from retrieval.indexer import KnowledgeIndexer  # noqa: E402
from retrieval.lexical import LexicalIndex  # noqa: E402
from retrieval.retriever import HybridRetriever  # noqa: E402
from storage import repository  # noqa: E402
from storage.db import create_db_engine, create_session_factory, upgrade_schema  # noqa: E402

MODEL = "packaged:all-MiniLM-L6-v2"
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.5)
DEFAULT_WEIGHT = 0.1
ANSWER_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)


class CachedEmbedder:
    """Wraps an embedder and memoises single-text calls, which is what queries make."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self._inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.batch_size = inner.batch_size
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return self._inner.embed(texts)
        if texts[0] not in self._cache:
            self._cache[texts[0]] = self._inner.embed(texts)
        return self._cache[texts[0]]


def load_stackfaq(data_dir: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    threads = json.loads((data_dir / "stackfaq" / "stackExchange-FAQ.json").read_text())
    entries, queries = [], []
    for thread in threads["root"]["qapair"]:
        answers = thread["answer"] if isinstance(thread["answer"], list) else [thread["answer"]]
        entries.append({"question": thread["question"], "answer": "\n\n".join(answers)})
        paraphrases = thread["rephr"] if isinstance(thread["rephr"], list) else [thread["rephr"]]
        queries += [(text, thread["question"]) for text in paraphrases if text and text != "*"]
    return entries, queries


def accuracy(
    ranked_questions: list[list[str]], queries: list[tuple[str, str]]
) -> tuple[float, float]:
    top1 = np.mean(
        [found[:1] == [gold] for found, (_, gold) in zip(ranked_questions, queries, strict=True)]
    )
    top5 = np.mean(
        [gold in found[:5] for found, (_, gold) in zip(ranked_questions, queries, strict=True)]
    )
    return float(top1), float(top5)


def run_hybrid(session_factory, embedder, index_dir, weight, queries) -> list[list[str]]:
    retriever = HybridRetriever(session_factory, embedder, index_dir, lexical_weight_en=weight)
    return [[p.question for p in retriever.retrieve(q, top_k=5)] for q, _ in queries]


def sweep_answer_threshold(session_factory, embedder, index_dir, queries) -> list[tuple]:
    """Return (threshold, share answered, share of those correct) at the default weight.

    A paraphrase counts as answered when its best FAQ entry scores at least the
    threshold, and as correct when that entry is its own thread. This is how the bot
    decides whether to return a stored FAQ answer as it is.
    """
    retriever = HybridRetriever(
        session_factory, embedder, index_dir, lexical_weight_en=DEFAULT_WEIGHT
    )
    best = []
    for query, gold in queries:
        passages = retriever.retrieve(query, top_k=1)
        best.append((passages[0].score, passages[0].question == gold))
    rows = []
    for threshold in ANSWER_THRESHOLDS:
        answered = [is_correct for score, is_correct in best if score >= threshold]
        precision = sum(answered) / len(answered) if answered else 0.0
        rows.append((threshold, len(answered) / len(best), precision))
    return rows


def run_lexical(session_factory, queries) -> tuple[list[list[str]], list[list[str]]]:
    with session_factory() as session:
        chunks = [c for d in repository.list_documents(session) for c in d.chunks]
    question_by_id = {chunk.id: chunk.question for chunk in chunks}
    index = LexicalIndex(
        (c.id, chunk_lexical_text(title=c.title, question=c.question, text=c.text)) for c in chunks
    )
    by_bm25, by_share = [], []
    for query, _ in queries:
        matches = index.search(query, top_k=len(chunks))
        by_bm25.append([question_by_id[m.chunk_id] for m in matches[:5]])
        by_share_matches = sorted(matches, key=lambda m: -m.score)[:5]
        by_share.append([question_by_id[m.chunk_id] for m in by_share_matches])
    return by_bm25, by_share


def run_dense_with_answers(embedder, entries, queries) -> list[list[str]]:
    documents = embedder.embed([f"{e['question']}\n{e['answer']}" for e in entries])
    query_vectors = np.concatenate([embedder.embed([q]) for q, _ in queries])
    top5 = np.argsort(-(query_vectors @ documents.T), axis=1)[:, :5]
    return [[entries[i]["question"] for i in row] for row in top5]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="Torch device, e.g. cpu or cuda.")
    args = parser.parse_args()
    data_dir = os.environ.get("SUPPORTBOT_DATA_DIR")
    if not data_dir:
        print("Set SUPPORTBOT_DATA_DIR to the folder of the public datasets", file=sys.stderr)
        return 2

    entries, queries = load_stackfaq(Path(data_dir))
    embedder = CachedEmbedder(SentenceTransformerEmbedder(MODEL, device=args.device))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        (work / "stackfaq.jsonl").write_text("\n".join(json.dumps(e) for e in entries))
        engine = create_db_engine(f"sqlite:///{work / 'bench.db'}")
        upgrade_schema(engine)
        session_factory = create_session_factory(engine)
        KnowledgeIndexer(session_factory, embedder, work / "index").index_paths(
            [work / "stackfaq.jsonl"]
        )

        started = time.perf_counter()
        dense = run_hybrid(session_factory, embedder, work / "index", 0.0, queries)
        latency_ms = 1000 * (time.perf_counter() - started) / len(queries)
        rows.append(("dense only", *accuracy(dense, queries)))
        with_answers = run_dense_with_answers(embedder, entries, queries)
        rows.append(("dense, title + answers embedded", *accuracy(with_answers, queries)))
        by_bm25, by_share = run_lexical(session_factory, queries)
        rows.append(("lexical BM25", *accuracy(by_bm25, queries)))
        rows.append(("lexical share", *accuracy(by_share, queries)))
        for weight in WEIGHTS:
            label = f"hybrid w={weight}" + (" (default)" if weight == DEFAULT_WEIGHT else "")
            ranked = run_hybrid(session_factory, embedder, work / "index", weight, queries)
            rows.append((label, *accuracy(ranked, queries)))
        sweep = sweep_answer_threshold(session_factory, embedder, work / "index", queries)
        engine.dispose()

    print(f"threads={len(entries)} queries={len(queries)} dense latency={latency_ms:.1f} ms/query")
    print("| method | top-1 | top-5 |")
    print("| --- | ---: | ---: |")
    for label, top1, top5 in rows:
        print(f"| {label} | {100 * top1:.1f}% | {100 * top5:.1f}% |")
    print()
    print("| answer threshold | paraphrases answered | of those, right thread |")
    print("| ---: | ---: | ---: |")
    for threshold, coverage, precision in sweep:
        print(f"| {threshold:.2f} | {100 * coverage:.1f}% | {100 * precision:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
