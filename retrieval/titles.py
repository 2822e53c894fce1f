"""Find documents whose title is named in a query.

Knowledge bases of venues, products or plans have one document per named thing, and a
customer who names it ("故宫的门票多少钱？") wants that document. Lexical scores alone
rank such a document below others that share more of the question's filler words, so
the retriever adds a fixed bonus to chunks whose document title occurs in the query.

Example:
    >>> matcher = TitleMatcher([(1, "故宫"), (2, "故宫餐厅"), (3, "Refund policy")])
    >>> matcher.match("故宫餐厅几点开门")
    [2]
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from retrieval.language import has_cjk

logger = logging.getLogger(__name__)

# Shortest title that counts as named: two characters for CJK titles (most place names
# have two or more), five for Latin ones, so that words such as "FAQ" or "Help" never
# count as a named document.
MIN_CJK_TITLE_CHARS = 2
MIN_LATIN_TITLE_CHARS = 5


class TitleMatcher:
    """Map document titles to chunk ids and find the titles a query contains."""

    def __init__(self, chunk_titles: Iterable[tuple[int, str]]) -> None:
        chunks_by_title: dict[str, list[int]] = defaultdict(list)
        for chunk_id, title in chunk_titles:
            key = title.strip().lower()
            if _is_specific(key):
                chunks_by_title[key].append(chunk_id)

        self._chunks_by_title = dict(chunks_by_title)

    def match(self, query: str) -> list[int]:
        """Return the chunk ids of documents whose title occurs in ``query``.

        When one matched title contains another ("故宫餐厅" and "故宫"), only the longer
        one counts. Costs one substring test per distinct title.
        """
        text = query.lower()
        found = [title for title in self._chunks_by_title if title in text]
        longest = [
            title
            for title in found
            if not any(title != other and title in other for other in found)
        ]
        return [chunk_id for title in longest for chunk_id in self._chunks_by_title[title]]


def _is_specific(title: str) -> bool:
    if has_cjk(title):
        return len(title) >= MIN_CJK_TITLE_CHARS
    return len(title) >= MIN_LATIN_TITLE_CHARS
