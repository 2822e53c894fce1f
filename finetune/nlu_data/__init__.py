"""Training data for intent classification and entity tagging, from files and public datasets.

Example:
    >>> from finetune.nlu_data import read_intent_file, read_public_tagging_dataset
    >>> utterances = read_intent_file("intents.csv")
    >>> splits = read_public_tagging_dataset("snips", "/data/public")
"""

from finetune.nlu_data.errors import DataFormatError, DataNotFoundError, NluDataError
from finetune.nlu_data.intent_readers import (
    IntentSplits,
    LabelledUtterance,
    check_intent_labels,
    read_intent_file,
    split_validation,
    stratified_split,
)
from finetune.nlu_data.public import (
    DATASETS,
    read_public_intent_dataset,
    read_public_tagging_dataset,
)
from finetune.nlu_data.tagging_readers import (
    TaggingSplits,
    read_tagging_file,
    sentence_from_spans,
)

__all__ = [
    "DATASETS",
    "DataFormatError",
    "DataNotFoundError",
    "IntentSplits",
    "LabelledUtterance",
    "NluDataError",
    "TaggingSplits",
    "check_intent_labels",
    "read_intent_file",
    "read_public_intent_dataset",
    "read_public_tagging_dataset",
    "read_tagging_file",
    "sentence_from_spans",
    "split_validation",
    "stratified_split",
]
