"""Message catalogue: every customer- or agent-facing string, in English and Simplified Chinese.

Strings live in ``bot/locales/<language>.json`` under dotted keys and are formatted with
``str.format`` placeholders. Both catalogues must have the same keys; `load_catalogue`
checks that at start-up so a missing translation fails fast instead of at a customer.

Example:
    >>> translate("fallback.no_answer", "zh-CN")
"""

from __future__ import annotations

import json
import logging
import string
from functools import cache
from pathlib import Path

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
_LOCALES_DIR = Path(__file__).parent / "locales"


class CatalogueError(Exception):
    """A catalogue file is missing, malformed or out of step with the other language."""


@cache
def load_catalogue() -> dict[str, dict[str, str]]:
    """Load and cross-check every catalogue file.

    Returns:
        Mapping of language code to mapping of message key to template.

    Raises:
        CatalogueError: If a file is missing or invalid, or the languages differ in keys
            or in placeholders of one key.
    """
    catalogues = {language: _read_catalogue(language) for language in LANGUAGES}
    reference = catalogues[DEFAULT_LANGUAGE]
    for language, catalogue in catalogues.items():
        missing = sorted(set(reference) ^ set(catalogue))
        if missing:
            raise CatalogueError(
                f"catalogues 'en' and {language!r} differ in keys {missing}: add the missing "
                f"entries to bot/locales/*.json"
            )
        for key, template in catalogue.items():
            if _placeholders(template) != _placeholders(reference[key]):
                raise CatalogueError(
                    f"message {key!r} has placeholders {sorted(_placeholders(template))} in "
                    f"{language!r} but {sorted(_placeholders(reference[key]))} in 'en'"
                )
    return catalogues


def normalize_language(language: str | None) -> str:
    """Map a language tag such as ``zh``, ``zh_CN`` or ``en-US`` to a catalogue language."""
    if not language:
        return DEFAULT_LANGUAGE
    tag = language.replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    return DEFAULT_LANGUAGE


def translate(key: str, language: str | None = None, **values: object) -> str:
    """Return the message ``key`` in ``language`` with ``values`` filled in.

    Raises:
        KeyError: If ``key`` is not in the catalogue (a programming error).
    """
    catalogue = load_catalogue()[normalize_language(language)]
    if key not in catalogue:
        raise KeyError(f"message key {key!r} is not in bot/locales/*.json")
    return catalogue[key].format(**values)


def _read_catalogue(language: str) -> dict[str, str]:
    path = _LOCALES_DIR / f"{language}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CatalogueError(f"cannot read message catalogue {path}: {error}") from error
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CatalogueError(f"message catalogue {path} must map keys to strings")
    return data


def _placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}
