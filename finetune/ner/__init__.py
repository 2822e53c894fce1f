"""Training and evaluation of entity taggers (transformer or CRF) from tagged sentences.

``train_tagger`` is the entry point; the saved folder loads with ``nlu.taggers.load_tagger``.
"""

from finetune.ner.config import NerTrainingConfig
from finetune.ner.evaluation import evaluate_tags, write_eval_report
from finetune.ner.train import collect_labels, train_tagger

__all__ = [
    "NerTrainingConfig",
    "collect_labels",
    "evaluate_tags",
    "train_tagger",
    "write_eval_report",
]
