"""Fine-tuning: datasets of supervised pairs from stored dialogs, redaction and training."""
