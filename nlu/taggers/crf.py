"""Entity tagger backed by a linear-chain CRF (python-crfsuite) over hand-made word features.

The CRF suits Chinese, where the packaged English encoder maps most characters to
``[UNK]``: it tags one character per word with the ``char`` features of
``nlu.taggers.crf_features``. It also runs for English with the ``word`` features, and it
needs no GPU. Tagging one short sentence takes well under a millisecond.

Example:
    >>> tagger = load_tagger(Path("models/ner-zh"))
    >>> [(entity.type, entity.text) for entity in tagger.predict("我要听周杰伦的歌")]
    [('singer_name', '周杰伦')]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pycrfsuite

from nlu.taggers.base import TaggerManifest, TagPrediction, WordTaggerBase
from nlu.taggers.crf_features import FEATURE_SETS, FEATURES_VERSION, sentence_features
from nlu.taggers.errors import TaggerLoadError

logger = logging.getLogger(__name__)

CRF_MODEL_FILE = "model.crfsuite"


class CrfEntityTagger(WordTaggerBase):
    """Tag words with a CRF model file written by python-crfsuite.

    Calls are serialised by a lock, because one ``pycrfsuite.Tagger`` keeps the sequence it
    is tagging as state.

    Args:
        folder: The tagger folder with ``model.crfsuite``.
        manifest: Its manifest; ``extra["features"]`` names the feature set and version.
        version: The version shown in each entity's ``source``.

    Raises:
        TaggerLoadError: If the model file is missing or unreadable, the feature set or its
            version differs from this code's, or the model's labels are not in the manifest.
    """

    def __init__(self, folder: Path, manifest: TaggerManifest, *, version: str) -> None:
        path = Path(folder) / CRF_MODEL_FILE
        self._feature_set = _validate_feature_settings(manifest, path.parent)

        self.version = version
        self._manifest = manifest
        self._lock = threading.Lock()
        self._tagger = _open_model(path)
        unknown = sorted(set(self._tagger.labels()) - set(manifest.labels))
        if unknown:
            raise TaggerLoadError(
                f"{path} predicts labels {unknown} that the manifest does not list: the model "
                "and nlu_model.json come from different runs; retrain the tagger"
            )

    def tag_words(self, word_lists: Sequence[Sequence[str]]) -> list[TagPrediction]:
        """Tag word sequences; words past ``max_length`` get ``O`` with probability 1.0.

        Args:
            word_lists: The words of each sentence.

        Returns:
            One prediction per sentence, with the marginal probability of each chosen tag.
        """
        limit = self._manifest.max_length
        predictions = []
        truncated = 0
        with self._lock:
            for words in word_lists:
                tagged_words = list(words[:limit])
                tags, probabilities = self._tag_one(tagged_words)
                padding = len(words) - len(tagged_words)
                truncated += padding > 0
                predictions.append(
                    TagPrediction(tags + ["O"] * padding, probabilities + [1.0] * padding)
                )
        if truncated:
            logger.warning(
                "Tagged only the first %d words of %d long texts; later words are tagged O",
                limit,
                truncated,
            )
        return predictions

    def _tag_one(self, words: list[str]) -> tuple[list[str], list[float]]:
        if not words:
            return [], []
        self._tagger.set(sentence_features(words, self._feature_set))
        tags = self._tagger.tag()
        probabilities = [self._tagger.marginal(tag, index) for index, tag in enumerate(tags)]
        return list(tags), probabilities


def _validate_feature_settings(manifest: TaggerManifest, folder: Path) -> str:
    settings = manifest.extra.get("features")
    if not isinstance(settings, dict) or settings.get("set") not in FEATURE_SETS:
        raise TaggerLoadError(
            f"{folder}: the manifest's 'features' must name a feature set in {FEATURE_SETS}, "
            f"got {settings!r}; retrain the tagger"
        )
    if settings.get("version") != FEATURES_VERSION:
        raise TaggerLoadError(
            f"{folder} was trained with CRF features version {settings.get('version')!r}, but "
            f"this code computes version {FEATURES_VERSION}: retrain the tagger"
        )
    return settings["set"]


def _open_model(path: Path) -> pycrfsuite.Tagger:
    if not path.is_file():
        raise TaggerLoadError(f"CRF model file {path} not found: retrain the tagger")
    tagger = pycrfsuite.Tagger()
    try:
        tagger.open(str(path))
    except (OSError, ValueError) as error:
        raise TaggerLoadError(f"CRF model file {path} could not be read: {error}") from error
    logger.info("Loaded CRF tagger path=%s labels=%d", path, len(tagger.labels()))
    return tagger
