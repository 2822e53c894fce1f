"""Hybrid dense and lexical retrieval of stored chunks.

Example:
    >>> retriever = HybridRetriever(session_factory, embedder, Path("index"))
    >>> passages = retriever.retrieve("How do I get a refund?", top_k=3)
    >>> passages[0].title, round(passages[0].score, 2)
    ('Billing > Refunds', 0.71)
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retrieval.chunker import chunk_lexical_text
from retrieval.embedder import Embedder
from retrieval.errors import IndexCorruptError
from retrieval.faiss_index import FaissPassageIndex, IndexManifest, read_manifest
from retrieval.indexer import KnowledgeIndexer, compute_source_fingerprint
from retrieval.language import detect_language
from retrieval.lexical import LexicalIndex
from retrieval.titles import TitleMatcher
from storage import repository
from storage.models import Chunk, DocumentKind, KnowledgeDocument

logger = logging.getLogger(__name__)

# Added to the lexical score (then capped at 1) of chunks whose document title occurs in
# the query. Large enough to lift the named venue above venues that merely list it as a
# neighbour; see retrieval/titles.py.
TITLE_MATCH_BONUS = 0.3
# Recent query embeddings kept per retriever (384 floats each for the packaged model).
QUERY_CACHE_SIZE = 64
# Document kinds whose title names one thing. FAQ titles are questions and past answers
# are titled by conversation id, so neither is matched by title.
_TITLED_KINDS = (DocumentKind.MARKDOWN, DocumentKind.TEXT, DocumentKind.HTML)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its scores.

    Attributes:
        chunk_id: Id of the stored chunk.
        document_id: Id of its knowledge document.
        title: Chunk title: document title and nearest heading, or the FAQ question.
        source: Path of the file, or "conversation:<external_id>" for past answers.
        kind: Kind of the document.
        question: The stored question for FAQ entries and past answers, else None.
        text: The passage, or the answer to ``question``.
        score: Combined score, 0..1; see ``HybridRetriever``.
        dense_score: Cosine similarity of query and chunk embeddings, clipped to 0..1.
        lexical_score: Normalised lexical score, 0..1; see ``LexicalIndex``.
        language: Detected language of the chunk, "en" or "zh-CN".
    """

    chunk_id: int
    document_id: int
    title: str
    source: str
    kind: DocumentKind
    question: str | None
    text: str
    score: float
    dense_score: float
    lexical_score: float
    language: str | None


@dataclass(frozen=True)
class _Snapshot:
    """Indexes loaded together; replaced as a whole by ``reload``."""

    manifest: IndexManifest
    dense: FaissPassageIndex
    lexical: LexicalIndex
    ids_by_kind: dict[DocumentKind, np.ndarray]
    dense_ids: frozenset[int]
    titles: TitleMatcher


class HybridRetriever:
    """Retrieve chunks by a weighted sum of dense and lexical scores.

    For each query, candidates come from the FAISS index (top ``candidates_per_route``
    by cosine) and from the lexical index (top ``candidates_per_route`` by BM25). Every
    candidate is then scored by both routes and ranked by

        score = (1 - w) * clip(cosine, 0, 1) + w * lexical_score,

    where w is ``lexical_weight_zh`` for queries that ``detect_language`` labels
    "zh-CN" and ``lexical_weight_en`` otherwise. The English weight is small because
    BM25 ranked paraphrased StackFAQ questions far worse than the packaged dense model
    (bench/bench_retrieval.py). The Chinese weight is high because all-MiniLM-L6-v2 maps
    most Chinese characters to [UNK].

    On construction, and on ``reload`` when the manifest changed, the retriever checks
    the FAISS index against the stored chunks. If they differ, it rebuilds the index
    from the stored embeddings (see ``KnowledgeIndexer.sync_index``). It then builds the
    lexical index in memory from all chunk texts (about 1 s for 10,000 chunks of
    400 characters on one 2-core machine).
    ``retrieve`` and ``reload`` are thread-safe.

    Args:
        session_factory: Session factory of the supportbot database.
        embedder: The embedder the index was built with; another model triggers
            re-embedding of every chunk on load.
        index_dir: Folder of the FAISS index.
        lexical_weight_en: Lexical weight for English queries, 0..1.
        lexical_weight_zh: Lexical weight for Chinese queries, 0..1.
        candidates_per_route: Candidates taken from each route before re-scoring.

    Raises:
        ValueError: If a weight is outside 0..1 or ``candidates_per_route`` is below 1.
        EmbeddingModelError: If re-embedding on load fails.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        embedder: Embedder,
        index_dir: Path,
        *,
        lexical_weight_en: float = 0.1,
        lexical_weight_zh: float = 0.9,
        candidates_per_route: int = 50,
    ) -> None:
        for name, weight in (
            ("lexical_weight_en", lexical_weight_en),
            ("lexical_weight_zh", lexical_weight_zh),
        ):
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {weight}")
        if candidates_per_route < 1:
            raise ValueError(f"candidates_per_route must be at least 1, got {candidates_per_route}")

        self._session_factory = session_factory
        self._embedder = embedder
        self.index_dir = Path(index_dir)
        self.lexical_weight_en = lexical_weight_en
        self.lexical_weight_zh = lexical_weight_zh
        self.candidates_per_route = candidates_per_route
        self._indexer = KnowledgeIndexer(session_factory, embedder, self.index_dir)
        self._reload_lock = threading.Lock()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_cache_lock = threading.Lock()
        self._has_warned_missing_rows = False
        self._snapshot = self._load_snapshot()

    @property
    def embedder(self) -> Embedder:
        """The embedder that encodes queries."""
        return self._embedder

    def retrieve(
        self, query: str, *, top_k: int = 5, kinds: Collection[DocumentKind] | None = None
    ) -> list[Passage]:
        """Return the ``top_k`` best chunks for ``query``, best first.

        Args:
            query: Customer text in English or Chinese.
            top_k: Maximum number of passages.
            kinds: If given, only chunks of documents of these kinds are searched.

        Returns:
            Passages sorted by combined score; empty for a blank query or empty index.

        Raises:
            ValueError: If ``top_k`` is below 1.
            EmbeddingModelError: If the query cannot be embedded.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        snapshot = self._snapshot
        allowed_ids = _allowed_ids(snapshot, kinds)
        if not query.strip() or len(snapshot.dense) == 0:
            return []
        if allowed_ids is not None and len(allowed_ids) == 0:
            return []

        weight = self._lexical_weight(query)
        dense, lexical = self._score_candidates(snapshot, query, weight, top_k, allowed_ids)
        combined = {
            chunk_id: (1 - weight) * dense[chunk_id] + weight * lexical[chunk_id]
            for chunk_id in dense
        }
        ranked = sorted(combined, key=lambda chunk_id: (-combined[chunk_id], chunk_id))
        logger.debug(
            "Retrieved candidates=%d lexical_weight=%.2f top_k=%d", len(ranked), weight, top_k
        )
        return self._fetch_passages(ranked, top_k, combined, dense, lexical)

    def reload(self) -> bool:
        """Load the index again if its manifest changed since the last load.

        Reading the manifest is the only cost when nothing changed.

        Returns:
            Whether a new index was loaded.
        """
        with self._reload_lock:
            try:
                manifest = read_manifest(self.index_dir)
            except IndexCorruptError:
                manifest = None
            if manifest is not None and manifest == self._snapshot.manifest:
                return False
            self._snapshot = self._load_snapshot()
            self._has_warned_missing_rows = False
        return True

    def _embed_query(self, query: str) -> np.ndarray:
        """Return the (1, d) query embedding, reusing it for repeated queries.

        The dialog manager retrieves stored answers and passages for the same message
        in two calls, so the second one finds the vector here instead of re-encoding.
        """
        with self._query_cache_lock:
            cached = self._query_cache.get(query)
            if cached is not None:
                self._query_cache.move_to_end(query)
                return cached
        vector = self._embedder.embed([query])
        with self._query_cache_lock:
            self._query_cache[query] = vector
            if len(self._query_cache) > QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        return vector

    def _lexical_weight(self, query: str) -> float:
        if detect_language(query) == "zh-CN":
            return self.lexical_weight_zh
        return self.lexical_weight_en

    def _score_candidates(
        self,
        snapshot: _Snapshot,
        query: str,
        weight: float,
        top_k: int,
        allowed_ids: np.ndarray | None,
    ) -> tuple[dict[int, float], dict[int, float]]:
        """Collect candidates from both routes and score each one by both."""
        pool = max(self.candidates_per_route, top_k)
        query_vector = self._embed_query(query)
        scores, ids = snapshot.dense.search(query_vector, pool, allowed_ids=allowed_ids)
        dense = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}

        lexical: dict[int, float] = {}
        if weight > 0:
            for match in snapshot.lexical.search(query, top_k=pool, allowed_ids=allowed_ids):
                lexical[match.chunk_id] = match.score
        named = self._named_chunks(snapshot, query, allowed_ids) if weight > 0 else []
        lexical.update({i: 0.0 for i in named if i not in lexical})
        # The lexical index is read from the database, so while an indexer runs it may
        # contain rows that the FAISS index lacks. Those candidates are dropped.
        lexical_only = np.array(
            [i for i in lexical if i not in dense and i in snapshot.dense_ids], dtype=np.int64
        )
        if len(lexical_only):
            vectors = snapshot.dense.reconstruct(lexical_only)
            dense.update(
                zip(lexical_only.tolist(), (vectors @ query_vector[0]).tolist(), strict=True)
            )
        lexical.update(snapshot.lexical.score(query, [i for i in dense if i not in lexical]))

        dense = {chunk_id: min(max(score, 0.0), 1.0) for chunk_id, score in dense.items()}
        for chunk_id in named:
            if chunk_id in lexical:
                lexical[chunk_id] = min(1.0, lexical[chunk_id] + TITLE_MATCH_BONUS)
        return dense, lexical

    @staticmethod
    def _named_chunks(snapshot: _Snapshot, query: str, allowed_ids: np.ndarray | None) -> list[int]:
        """Return chunks of documents whose title the query names, within ``allowed_ids``."""
        named = snapshot.titles.match(query)
        if allowed_ids is None:
            return named
        allowed = set(allowed_ids.tolist())
        return [chunk_id for chunk_id in named if chunk_id in allowed]

    def _fetch_passages(
        self,
        ranked: list[int],
        top_k: int,
        combined: dict[int, float],
        dense: dict[int, float],
        lexical: dict[int, float],
    ) -> list[Passage]:
        passages: list[Passage] = []
        with self._session_factory() as session:
            # Fetch a few spare rows in case some were deleted since the index was loaded.
            wanted = ranked[: top_k * 2]
            chunks = repository.get_chunks_by_ids(session, wanted)
            for chunk_id in wanted:
                chunk = chunks.get(chunk_id)
                if chunk is None:
                    continue
                passages.append(
                    Passage(
                        chunk_id=chunk_id,
                        document_id=chunk.document_id,
                        title=chunk.title,
                        source=chunk.document.source,
                        kind=chunk.document.kind,
                        question=chunk.question,
                        text=chunk.text,
                        score=combined[chunk_id],
                        dense_score=dense[chunk_id],
                        lexical_score=lexical[chunk_id],
                        language=chunk.language,
                    )
                )
                if len(passages) == top_k:
                    break
        if len(passages) < min(top_k, len(ranked)) and not self._has_warned_missing_rows:
            # Logged once per loaded index, because every later query would repeat it.
            self._has_warned_missing_rows = True
            logger.warning(
                "Some indexed chunks are no longer stored; run `supportbot index` to refresh "
                "the index dir=%s",
                self.index_dir,
            )
        return passages

    def _load_snapshot(self) -> _Snapshot:
        self._ensure_index_current()
        try:
            dense, manifest = FaissPassageIndex.load(self.index_dir)
        except IndexCorruptError as error:
            logger.warning("Rebuilding the FAISS index because it is unusable: %s", error)
            self._indexer.sync_index()
            dense, manifest = FaissPassageIndex.load(self.index_dir)

        with self._session_factory() as session:
            rows = session.execute(
                select(
                    Chunk.id,
                    Chunk.title,
                    Chunk.question,
                    Chunk.text,
                    KnowledgeDocument.kind,
                    KnowledgeDocument.title.label("document_title"),
                )
                .join(KnowledgeDocument, Chunk.document_id == KnowledgeDocument.id)
                .order_by(Chunk.id)
            ).all()
        lexical = LexicalIndex(
            (
                row.id,
                chunk_lexical_text(
                    title=row.title, question=row.question, text=row.text, kind=row.kind
                ),
            )
            for row in rows
        )
        ids_by_kind = {
            kind: np.array([row.id for row in rows if row.kind == kind], dtype=np.int64)
            for kind in DocumentKind
        }
        logger.info("Loaded retrieval index chunks=%d dir=%s", len(rows), self.index_dir)
        return _Snapshot(
            manifest=manifest,
            dense=dense,
            lexical=lexical,
            ids_by_kind=ids_by_kind,
            dense_ids=frozenset(dense.ids.tolist()),
            titles=TitleMatcher(
                (row.id, row.document_title) for row in rows if row.kind in _TITLED_KINDS
            ),
        )

    def _ensure_index_current(self) -> None:
        """Rebuild the index when its manifest does not match the stored chunks."""
        with self._session_factory() as session:
            fingerprint = compute_source_fingerprint(session)
        try:
            manifest = read_manifest(self.index_dir)
        except IndexCorruptError:
            manifest = None
        if (
            manifest is not None
            and manifest.source_fingerprint == fingerprint
            and manifest.embedding_model == self._embedder.name
        ):
            return
        if manifest is None:
            logger.info("Building the FAISS index in %s from the database", self.index_dir)
        else:
            logger.warning(
                "The FAISS index in %s does not match the stored chunks or the model %s, "
                "for example after an interrupted `supportbot index`; rebuilding it",
                self.index_dir,
                self._embedder.name,
            )
        self._indexer.sync_index()


def _allowed_ids(snapshot: _Snapshot, kinds: Collection[DocumentKind] | None) -> np.ndarray | None:
    if kinds is None:
        return None
    parts = [snapshot.ids_by_kind.get(DocumentKind(kind), np.zeros(0, np.int64)) for kind in kinds]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
