"""Natural-language understanding: intents, entities and slots for one customer turn.

This package contains the code that both training (``finetune``) and serving (``bot``) use:
the result types, the rule-based extractors, word splitting, tag decoding, and the model
classes that load a trained intent or entity model from its folder and predict. Of the
product's other packages it imports only ``retrieval``, to resolve the path of the packaged
encoder.
"""
