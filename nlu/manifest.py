"""The ``nlu_model.json`` file that describes a saved intent or entity model folder.

Every folder written by ``supportbot finetune intent`` or ``supportbot finetune ner`` contains
this file next to the model's weights. Loaders read it first, so a folder of the wrong kind
or of an unknown backend fails with a message that names the folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST_NAME = "nlu_model.json"


class ModelFolderError(ValueError):
    """A model folder is missing, incomplete or of another kind."""


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as ``nlu_model.json`` into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def read_manifest(folder: Path | str, kind: str) -> dict[str, Any]:
    """Read the manifest of a model folder and check that it describes a ``kind`` model.

    Args:
        folder: The folder that a training run saved.
        kind: ``intent`` or ``ner``.

    Returns:
        The manifest as a dictionary.

    Raises:
        ModelFolderError: If the folder or its manifest is missing, unreadable or of
            another kind.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ModelFolderError(
            f"model folder {folder} does not exist: check the path, or run "
            f"'supportbot models list --kind {kind}' to see the registered versions"
        )
    if not path.is_file():
        raise ModelFolderError(
            f"{folder} has no {MANIFEST_NAME}, so it is not a supportbot {kind} model: "
            f"train one with 'supportbot finetune {kind}'"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"failed to read {path}: {error}. Train the model again") from error
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        found = manifest.get("kind") if isinstance(manifest, dict) else None
        raise ModelFolderError(
            f"{folder} contains a {found!r} model, not a {kind!r} model: pick a {kind} version"
        )
    return manifest
