"""peerstats.datasets."""
