"""One ``repr`` / notebook HTML for the effects results: both show their ``summary()`` text."""

from __future__ import annotations

import html


class SummaryRepr:
    """Mixin: ``repr(result)`` is ``result.summary()``; in a notebook, the same text in a
    ``<pre>`` block. Dataclasses using it need ``repr=False``."""

    def summary(self) -> str:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.summary())}</pre>"
