"""Keep the held-out dialogs' own agent answers out of retrieval during a replay.

``supportbot index`` stores each imported conversation's (question, agent answer) pairs as
a knowledge document "conversation:<external_id>", held-out conversations included. A
replayed question would then find its own real answer as a stored answer and score as a
perfect reply. :class:`HeldOutExcludingRetriever` drops the chunks of those documents.

Example:
    >>> excluded = find_past_answer_documents(session_factory, ["sgd:train/1_00000"])
    >>> retriever = HeldOutExcludingRetriever(runtime.retriever, excluded)
    >>> retriever.retrieve("I want to check my savings balance", top_k=3)
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from retrieval.embedder import Embedder
from retrieval.indexer import DIALOG_SOURCE_PREFIX, MAX_SOURCE_CHARS
from retrieval.retriever import HybridRetriever, Passage
from storage.models import Chunk, DocumentKind, KnowledgeDocument

logger = logging.getLogger(__name__)

# Extra candidates asked for in the first search, before doubling.
FIRST_EXTRA_CANDIDATES = 20
# Document sources looked up per query.
_SOURCE_BATCH_SIZE = 500


@dataclass(frozen=True)
class ExcludedDocuments:
    """Past-answer documents kept out of retrieval.

    Attributes:
        document_ids: Ids of the excluded knowledge documents.
        chunk_count: Number of their chunks: the most results a search can lose to them.
    """

    document_ids: frozenset[int]
    chunk_count: int


def find_past_answer_documents(
    session_factory: sessionmaker[Session], external_ids: Iterable[str]
) -> ExcludedDocuments:
    """Return the past-answer documents indexed from the conversations ``external_ids``."""
    # The indexer truncates long sources the same way.
    sources = sorted(
        {f"{DIALOG_SOURCE_PREFIX}{external_id}"[:MAX_SOURCE_CHARS] for external_id in external_ids}
    )
    document_ids: set[int] = set()
    chunk_count = 0
    with session_factory() as session:
        for start in range(0, len(sources), _SOURCE_BATCH_SIZE):
            rows = session.execute(
                select(KnowledgeDocument.id, func.count(Chunk.id))
                .outerjoin(Chunk, Chunk.document_id == KnowledgeDocument.id)
                .where(
                    KnowledgeDocument.kind == DocumentKind.DIALOG,
                    KnowledgeDocument.source.in_(sources[start : start + _SOURCE_BATCH_SIZE]),
                )
                .group_by(KnowledgeDocument.id)
            ).all()
            document_ids.update(document_id for document_id, _ in rows)
            chunk_count += sum(count for _, count in rows)
    logger.info(
        "Excluding past answers of held-out conversations documents=%d chunks=%d",
        len(document_ids),
        chunk_count,
    )
    return ExcludedDocuments(frozenset(document_ids), chunk_count)


class HeldOutExcludingRetriever:
    """A retriever that never returns chunks of the excluded documents.

    It requests ``top_k`` plus a few extra passages from the wrapped retriever and drops
    the excluded ones. When too few remain, it doubles the extra candidates and retries,
    up to ``top_k`` plus every excluded chunk, so the result always has the best
    ``top_k`` passages that are not excluded, as far as the wrapped retriever ranks them.

    NOTE: The lexical index still counts the excluded chunks in its term statistics, so
    scores differ slightly from an index built without those documents.

    ``blocked_searches`` counts the searches whose first ``top_k`` results contained an
    excluded passage, that is, the searches that would have leaked without the filter.

    Args:
        retriever: The serving retriever.
        excluded: Documents to drop, from :func:`find_past_answer_documents`.
    """

    def __init__(self, retriever: HybridRetriever, excluded: ExcludedDocuments) -> None:
        self._retriever = retriever
        self.excluded = excluded
        self.blocked_searches = 0

    @property
    def embedder(self) -> Embedder:
        """The embedder of the wrapped retriever."""
        return self._retriever.embedder

    def retrieve(
        self, query: str, *, top_k: int = 5, kinds: Collection[DocumentKind] | None = None
    ) -> list[Passage]:
        """Return the ``top_k`` best passages for ``query`` that are not excluded.

        Arguments and errors are those of :meth:`HybridRetriever.retrieve`.
        """
        if not self.excluded.document_ids or (
            kinds is not None and DocumentKind.DIALOG not in kinds
        ):
            return self._retriever.retrieve(query, top_k=top_k, kinds=kinds)

        max_request = top_k + self.excluded.chunk_count
        request = min(top_k + FIRST_EXTRA_CANDIDATES, max_request)
        while True:
            passages = self._retriever.retrieve(query, top_k=request, kinds=kinds)
            kept = [p for p in passages if p.document_id not in self.excluded.document_ids]
            if len(kept) >= top_k or len(passages) < request or request >= max_request:
                break
            request = min(2 * request, max_request)
        if any(p.document_id in self.excluded.document_ids for p in passages[:top_k]):
            self.blocked_searches += 1
        return kept[:top_k]
