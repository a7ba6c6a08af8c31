"""``python -m peerstats``: the ``peerstats`` console script (:func:`peerstats.cli.main`)."""

import sys

from peerstats.cli import main

if __name__ == "__main__":
    sys.exit(main())
