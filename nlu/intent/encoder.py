"""Encoder intent model: a pretrained sentence encoder with a linear intent head.

The packaged all-MiniLM-L6-v2 encoder was trained to produce sentence vectors by mean
pooling, so the head reads the mean of the token states rather than the [CLS] state, and the
whole encoder is fine-tuned with it. Any Hugging Face encoder folder or id works the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlu.manifest import ModelFolderError
from retrieval.embedder import PACKAGED_PREFIX, resolve_packaged_model

logger = logging.getLogger(__name__)

BACKEND = "encoder"
DEFAULT_ENCODER = "packaged:all-MiniLM-L6-v2"
ENCODER_DIR = "encoder"
HEAD_FILE = "head.pt"


class EncoderLoadError(RuntimeError):
    """Failure to load the encoder named in the settings or on the command line."""


def resolve_encoder(name: str) -> tuple[str, bool]:
    """Return where to load encoder ``name`` from and whether that location is local.

    ``packaged:`` names and existing folders are local. Any other name is a Hugging Face id.

    Raises:
        EncoderLoadError: If ``name`` is empty.
    """
    if not name or not name.strip():
        raise EncoderLoadError(
            "encoder name is empty: give 'packaged:all-MiniLM-L6-v2', a local folder or a "
            "Hugging Face id"
        )
    if name.startswith(PACKAGED_PREFIX):
        return resolve_packaged_model(name), True
    folder = Path(name).expanduser()
    if folder.is_dir():
        return str(folder), True
    return name, False


def load_tokenizer_and_encoder(name: str):
    """Load a fast tokenizer and the bare encoder (no head) for ``name``.

    A local folder is read without contacting the hub. For a Hugging Face id on a machine
    without network access, set HF_HUB_OFFLINE=1 so that only the local cache is read.

    Raises:
        EncoderLoadError: If the model cannot be found or loaded, or has no fast tokenizer.
    """
    from transformers import AutoModel, AutoTokenizer

    location, is_local = resolve_encoder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=is_local)
        encoder = AutoModel.from_pretrained(location, local_files_only=is_local)
    except OSError as error:
        where = "the folder" if is_local else "the Hugging Face cache or hub"
        raise EncoderLoadError(
            f"encoder {name!r} could not be loaded from {where}: {error}. Point --base-model "
            "at a local folder of a Hugging Face encoder, or use 'packaged:all-MiniLM-L6-v2'"
        ) from error
    if not getattr(tokenizer, "is_fast", False):
        raise EncoderLoadError(
            f"encoder {name!r} has no fast tokenizer, which supportbot needs to align words "
            "and sub-words: pick a model with a tokenizer.json"
        )
    return tokenizer, encoder


class MeanPoolingClassifier(nn.Module):
    """Encoder with mean pooling over non-padding tokens, dropout and a linear intent layer."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> dict[str, torch.Tensor]:
        """Return ``logits`` and, when ``labels`` are given, the cross-entropy ``loss``.

        The loss uses label smoothing 0.1.
        """
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.head(self.dropout(pooled))
        output = {"logits": logits}
        if labels is not None:
            output["loss"] = nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
        return output


class EncoderIntentModel:
    """A fine-tuned :class:`MeanPoolingClassifier` ready to score texts."""

    backend = BACKEND

    def __init__(
        self,
        tokenizer,
        module: MeanPoolingClassifier,
        labels: Sequence[str],
        *,
        max_length: int = 64,
        batch_size: int = 64,
    ) -> None:
        self.tokenizer = tokenizer
        self.module = module.eval()
        self.labels = list(labels)
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.inference_mode()
    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Return the logits, shape (len(texts), len(labels)).

        Texts longer than ``max_length`` tokens are truncated.
        """
        device = next(self.module.parameters()).device
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(device)
            logits = self.module(batch["input_ids"], batch["attention_mask"])["logits"]
            rows.append(logits.float().cpu().numpy())
        if not rows:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(rows)

    def save(self, folder: Path) -> None:
        """Write the encoder, its tokenizer and the head's weights into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.module.encoder.save_pretrained(folder / ENCODER_DIR)
        self.tokenizer.save_pretrained(folder / ENCODER_DIR)
        torch.save(self.module.head.state_dict(), folder / HEAD_FILE)

    @classmethod
    def load(cls, folder: Path, labels: Sequence[str], *, max_length: int) -> EncoderIntentModel:
        """Load a model saved by :meth:`save`, on the GPU when CUDA is available.

        Raises:
            ModelFolderError: If ``encoder/`` or ``head.pt`` is missing.
            EncoderLoadError: If the saved encoder cannot be loaded.
        """
        encoder_dir = folder / ENCODER_DIR
        if not encoder_dir.is_dir() or not (folder / HEAD_FILE).is_file():
            raise ModelFolderError(
                f"{folder} is missing {ENCODER_DIR}/ or {HEAD_FILE}: train the intent model again"
            )
        tokenizer, encoder = load_tokenizer_and_encoder(str(encoder_dir))
        module = MeanPoolingClassifier(encoder, len(labels))
        module.head.load_state_dict(torch.load(folder / HEAD_FILE, weights_only=True))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(tokenizer, module.to(device), labels, max_length=max_length)
