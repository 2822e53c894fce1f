"""Entity taggers: load a trained model folder and find entities in customer text.

Example:
    >>> tagger = load_tagger(Path("models/ner-en"), version="ner-en-3")
    >>> tagger.predict("book a table at mcdonald's for 4")
    [Entity(type='restaurant_name', value="mcdonald's", ...), ...]
"""

from __future__ import annotations

import logging
from pathlib import Path

from nlu.taggers.base import (
    BACKENDS,
    MANIFEST_FILE,
    EntityTagger,
    TaggerManifest,
    TagPrediction,
    WordTaggerBase,
    read_manifest,
)
from nlu.taggers.errors import TaggerError, TaggerLoadError

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "MANIFEST_FILE",
    "EntityTagger",
    "TagPrediction",
    "TaggerError",
    "TaggerLoadError",
    "TaggerManifest",
    "WordTaggerBase",
    "load_tagger",
    "read_manifest",
]


def load_tagger(
    folder: Path | str, *, version: str | None = None, device: str | None = None
) -> WordTaggerBase:
    """Load the entity tagger in ``folder``, choosing the backend its manifest names.

    Args:
        folder: A folder written by entity-tagger training, with ``nlu_model.json``.
        version: The version shown in each entity's ``source`` (``model:<version>``). None
            uses the manifest's ``version`` key, else the folder's name.
        device: Torch device for the transformer backend; None picks CUDA when available.
            No effect on the CRF backend.

    Returns:
        The tagger, which satisfies ``EntityTagger``.

    Raises:
        TaggerLoadError: If the folder, manifest or model files are missing or invalid, or
            they disagree with each other.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    resolved_version = version or str(manifest.extra.get("version") or folder.name)

    logger.info(
        "Loading entity tagger folder=%s backend=%s language=%s version=%s",
        folder,
        manifest.backend,
        manifest.language,
        resolved_version,
    )
    if manifest.backend == "crf":
        from nlu.taggers.crf import CrfEntityTagger

        return CrfEntityTagger(folder, manifest, version=resolved_version)

    from nlu.taggers.transformer import TransformerEntityTagger

    return TransformerEntityTagger(folder, manifest, version=resolved_version, device=device)
