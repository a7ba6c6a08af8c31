"""peerstats.describe."""
