"""Display labels: codes in the data (``fu3``, ``usual``, ``living_alone``, ``1.0``) become the
names a reader sees (``3-month follow-up``, ``usual services``, ``Living alone``, ``yes``).

:class:`Labels` holds the names of arms, visits, outcomes, covariates and covariate levels
(an analysis spec's ``labels:`` section builds one); :func:`relabel` applies it to a rendered
:class:`~peerstats.describe.render.Table` (headers, caption, notes, and the cells of the
``Arm`` / ``Visit`` / ``Outcome`` columns). Tidy ``.data`` frames keep the codes: they are for
computation and for matching results across runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from peerstats.describe.render import Table

__all__ = ["Labels", "relabel"]


@dataclass(frozen=True)
class Labels:
    """Display names by kind; a code without a label shows as itself.

    Attributes
    ----------
    arms, visits, outcomes, covariates : dict of str to str
    levels : dict of str to dict of str to str
        Per covariate, the names of its levels (``{"living_alone": {"1": "yes"}}``).
    reasons, adverse_events : dict of str to str
        Names of reasons (CONSORT) and adverse-event terms as written in the data (issue 21).
    """

    arms: Mapping[str, str] = field(default_factory=dict)
    visits: Mapping[str, str] = field(default_factory=dict)
    outcomes: Mapping[str, str] = field(default_factory=dict)
    covariates: Mapping[str, str] = field(default_factory=dict)
    levels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    adverse_events: Mapping[str, str] = field(default_factory=dict)

    def arm(self, code: Any) -> str:
        """Display name of an arm."""
        return str(self.arms.get(str(code), code))

    def visit(self, code: Any) -> str:
        """Display name of a visit."""
        return str(self.visits.get(str(code), code))

    def outcome(self, code: Any) -> str:
        """Display name of an outcome."""
        return str(self.outcomes.get(str(code), code))

    def reason(self, text: Any) -> Any:
        """Display text of a reason: its label, else the text with codes (an outcome's column
        name in "no post-baseline qpr_tot") replaced by their labels."""
        if not isinstance(text, str) or not text:
            return text
        m = re.match(r"^(\s*(?:\u2013\s+)?)(.*?)\s*$", text, flags=re.S)
        prefix, key = m.group(1), m.group(2)  # a CONSORT table's "  – reason" line
        if key in self.reasons:
            return prefix + str(self.reasons[key])
        return self.text(text)

    def adverse_event(self, text: Any) -> Any:
        """Display text of an adverse-event term (leading spaces kept)."""
        if not isinstance(text, str):
            return text
        key = text.strip()
        label = self.adverse_events.get(key)
        return text if label is None else text[: len(text) - len(text.lstrip())] + str(label)

    def words(self) -> dict[str, str]:
        """Every code with a label different from it (for replacing words in running text)."""
        out: dict[str, str] = {}
        for mapping in (self.covariates, self.outcomes, self.visits, self.arms):
            for k, v in mapping.items():
                if str(k) != str(v):
                    out[str(k)] = str(v)
        return out

    def text(self, s: str) -> str:
        """Replace whole-word codes in ``s`` by their labels (one pass: a label that contains
        its code is not replaced again)."""
        words = self.words()
        if not words or not s:
            return s
        pattern = re.compile(
            r"(?<![\w.-])("
            + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
            + r")(?![\w-])"
        )
        return pattern.sub(lambda m: words[m.group(1)], s)


_CELL_COLUMNS = {"Arm": "arm", "Visit": "visit", "Outcome": "outcome"}
_TEXT_COLUMNS = {"Reason": "reason", "Box": "reason", "Adverse events": "adverse_event"}


def relabel(table: Table, labels: Labels) -> Table:
    """A copy of ``table`` whose display, caption and notes use ``labels``.

    Headers, caption and notes get whole-word replacement (:meth:`Labels.text`); the cells of
    ``Arm``, ``Visit`` and ``Outcome`` columns are mapped exactly. ``.data`` is unchanged.
    """
    disp = table.display.copy()
    for col, kind in _CELL_COLUMNS.items():
        if col in disp.columns:
            get = getattr(labels, kind)
            disp[col] = [get(v) if isinstance(v, str) and v != "" else v for v in disp[col]]
    for col, kind in _TEXT_COLUMNS.items():
        if col in disp.columns:
            disp[col] = [getattr(labels, kind)(v) for v in disp[col]]
    disp.columns = [labels.text(str(c)) for c in disp.columns]
    out = Table(
        table.data,
        disp,
        caption=labels.text(table.caption) if table.caption else table.caption,
        notes=[labels.text(n) for n in table.notes],
        extras=dict(table.extras),
    )
    return out


def display_frame(table: Table) -> pd.DataFrame:
    """The display of ``table`` as a plain frame of strings (what the display CSV holds)."""
    return table.display.astype(str).replace({"nan": "", "<NA>": ""})
