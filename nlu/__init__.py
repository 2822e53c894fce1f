"""Natural-language understanding: intents, entities and slots for one customer turn.

This package holds what both training (``finetune``) and serving (``bot``) need: the result
types, the rule-based extractors, word splitting and tag decoding, and the model classes that
load a trained intent or entity model from its folder and predict. It imports none of the
product's other packages except ``retrieval`` for language detection.
"""
