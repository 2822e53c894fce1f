"""End-to-end evaluation: replay held-out real dialogs through the bot and score the replies."""
