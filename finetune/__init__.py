"""Fine-tuning: datasets of supervised pairs built from stored dialogs, with redaction."""
