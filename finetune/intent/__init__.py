"""Training and evaluation of intent classifiers (``supportbot finetune intent``)."""
