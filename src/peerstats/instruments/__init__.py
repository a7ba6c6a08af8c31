"""peerstats.instruments."""
