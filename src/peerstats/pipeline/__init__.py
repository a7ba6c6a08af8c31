"""peerstats.pipeline."""
