"""peerstats.io."""
