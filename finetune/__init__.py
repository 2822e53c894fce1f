"""Training code for the dialog, intent and entity models; it has no modules yet."""
