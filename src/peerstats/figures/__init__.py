"""peerstats.figures."""
