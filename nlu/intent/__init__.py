"""Intent classification: models that score intents, calibration, the out-of-scope threshold."""
