"""Character n-gram intent model: TF-IDF features and a linear classifier (scikit-learn).

It needs no language-specific tokenizer, so it serves Chinese, which the packaged English
encoder cannot read, as well as English. It trains in seconds. The features are character
1-4-grams within word boundaries plus word unigrams and bigrams (jieba words for Chinese).
The classifier is a linear SVM whose decision values temperature scaling turns into
probabilities.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_union
from sklearn.svm import LinearSVC

from nlu.manifest import ModelFolderError

logger = logging.getLogger(__name__)

BACKEND = "charngram"
MODEL_FILE = "model.joblib"
# Runs of letters, digits and underscores in any script.
_WORD = re.compile(r"\w+", re.UNICODE)
# CJK Unified Ideographs and Extension A.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class CharNgramOptions:
    """Features and regularisation of the character n-gram model.

    Attributes:
        char_ngrams: Smallest and largest character n-gram.
        word_ngrams: Smallest and largest word n-gram; (0, 0) turns word features off.
        c: Inverse regularisation strength (scikit-learn's ``C``) of the linear SVM.
    """

    char_ngrams: tuple[int, int] = (1, 4)
    word_ngrams: tuple[int, int] = (1, 2)
    c: float = 1.0


def split_words(text: str) -> list[str]:
    """Lower-case ``text`` and split it into words, with jieba when it contains Chinese.

    Text without Chinese characters is split into runs of letters, digits and underscores.
    Saved models call this function by name, so renaming it breaks them.
    """
    if _CJK.search(text):
        import jieba

        return [word for word in jieba.lcut(text.lower()) if word.strip()]
    return _WORD.findall(text.lower())


class CharNgramIntentModel:
    """A fitted TF-IDF + linear SVM pipeline with its class labels."""

    backend = BACKEND

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.labels: list[str] = [str(label) for label in pipeline.classes_]

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        options: CharNgramOptions | None = None,
    ) -> CharNgramIntentModel:
        """Fit a new model on ``texts`` and their ``labels`` and return it."""
        options = options or CharNgramOptions()
        features = [
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=options.char_ngrams,
                sublinear_tf=True,
                lowercase=True,
            )
        ]
        if options.word_ngrams[0] > 0:
            features.append(
                TfidfVectorizer(
                    tokenizer=split_words,
                    token_pattern=None,
                    lowercase=False,
                    ngram_range=options.word_ngrams,
                    sublinear_tf=True,
                )
            )
        pipeline = Pipeline(
            [
                ("features", make_union(*features)),
                ("classifier", LinearSVC(C=options.c)),
            ]
        )
        logger.info("Fitting character n-gram intent model on %d texts", len(texts))
        pipeline.fit(list(texts), list(labels))
        return cls(pipeline)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Return decision values, shape (len(texts), len(labels))."""
        values = self.pipeline.decision_function(list(texts))
        if values.ndim == 1:
            # Two classes: scikit-learn returns the score of the second class only.
            values = np.stack([-values, values], axis=1)
        return values

    def save(self, folder: Path) -> None:
        """Write the fitted pipeline into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, folder / MODEL_FILE)

    @classmethod
    def load(cls, folder: Path) -> CharNgramIntentModel:
        """Load a pipeline saved by :meth:`save`.

        The file is a pickle, so load only folders that your own training runs wrote.

        Raises:
            ModelFolderError: If the file is missing, cannot be unpickled or does not
                contain a scikit-learn pipeline.
        """
        path = folder / MODEL_FILE
        if not path.is_file():
            raise ModelFolderError(
                f"{folder} is missing {MODEL_FILE}: train the intent model again"
            )
        try:
            pipeline = joblib.load(path)
        except Exception as error:  # noqa: BLE001 - a damaged pickle can raise any error
            raise ModelFolderError(
                f"failed to load {path}, which is damaged or incompatible "
                f"({type(error).__name__}: {error}): train the intent model again"
            ) from error
        if not isinstance(pipeline, Pipeline):
            raise ModelFolderError(
                f"{path} does not contain a scikit-learn pipeline: train the intent model again"
            )
        return cls(pipeline)
