"""peerstats.models."""
