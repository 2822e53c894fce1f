"""Rendering of CrossWOZ database entries as Chinese Markdown documents.

The CrossWOZ database (Beijing attractions, restaurants and hotels) stores each venue as
``[name, {field: value}]``. Missing values are null and are left out of the document.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

VENUE_FOLDERS = {"attraction": "attractions", "restaurant": "restaurants", "hotel": "hotels"}
_CATEGORY = {"attraction": "景点", "restaurant": "餐馆", "hotel": "酒店"}
# Nearby lists have up to about 100 names. The CrossWOZ database notes suggest showing
# the first five, which keeps each document to one retrieval chunk.
MAX_NEARBY = 5


def _plain(value: object) -> str:
    return str(value).strip()


def _yuan(value: object) -> str:
    return f"{value}元"


def _ticket(value: object) -> str:
    return "免费" if value == 0 else f"{value}元"


def _all_items(value: object) -> str:
    return "、".join(str(item) for item in value) if isinstance(value, list) else str(value)


def _nearby(value: object) -> str:
    if not isinstance(value, list):
        return str(value)
    first_names = "、".join(value[:MAX_NEARBY])
    return f"{first_names}等{len(value)}处" if len(value) > MAX_NEARBY else first_names


_NEARBY_FIELDS: list[tuple[str, Callable[[object], str]]] = [
    ("周边景点", _nearby),
    ("周边餐馆", _nearby),
    ("周边酒店", _nearby),
]
# Field order and formatting per venue kind, following the CrossWOZ database schema.
_FIELDS: dict[str, list[tuple[str, Callable[[object], str]]]] = {
    "attraction": [
        ("地址", _plain),
        ("地铁", _plain),
        ("电话", _plain),
        ("门票", _ticket),
        ("游玩时间", _plain),
        ("评分", _plain),
        *_NEARBY_FIELDS,
    ],
    "restaurant": [
        ("地址", _plain),
        ("地铁", _plain),
        ("电话", _plain),
        ("营业时间", _plain),
        ("推荐菜", _all_items),
        ("人均消费", _yuan),
        ("评分", _plain),
        *_NEARBY_FIELDS,
    ],
    "hotel": [
        ("酒店类型", _plain),
        ("地址", _plain),
        ("地铁", _plain),
        ("电话", _plain),
        ("酒店设施", _all_items),
        ("价格", _yuan),
        ("评分", _plain),
        *_NEARBY_FIELDS,
    ],
}


def render_venue(kind: str, fields: dict[str, object]) -> str:
    """Return the Markdown document of one venue: its name as title, then a field per line.

    Args:
        kind: "attraction", "restaurant" or "hotel".
        fields: The venue's field dictionary from the CrossWOZ database; ``名称`` is
            required.

    Raises:
        ValueError: If ``kind`` is unknown or the venue has no name.
    """
    if kind not in _FIELDS:
        raise ValueError(f"unknown venue kind {kind!r}: use one of {', '.join(_FIELDS)}")
    name = str(fields.get("名称") or "").strip()
    if not name:
        raise ValueError(f"{kind} entry without 名称 (name): {sorted(fields)}")

    lines = [f"# {name}", "", f"类别：{_CATEGORY[kind]}"]
    for label, render in _FIELDS[kind]:
        value = fields.get(label)
        if value is None or value == "" or value == []:
            continue
        lines.append(f"{label}：{render(value)}")
    return "\n".join(lines) + "\n"
