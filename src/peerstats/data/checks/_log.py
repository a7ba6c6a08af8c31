"""The failure log every check writes to, and the context the table checks share."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from peerstats._identifiers import cap_text, escape_controls, mask_identifiers, mask_value
from peerstats.data.trial_spec import TrialSpec
from peerstats.exceptions import FAILURE_COLUMNS

__all__ = ["Ctx", "Log", "suggest"]


class Log:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self._seen: set = set()

    def add(
        self, table: str, row: Any, column: str | None, value: Any, check: str, message: str
    ) -> None:
        row = None if row is None else int(row)
        key = (table, row, column, check)
        if key in self._seen:  # wide files: one failure per wide cell, not per visit copy
            return
        self._seen.add(key)
        # nothing a failure shows may echo an identifier or a control character, whatever
        # the message was built from (a header, a cell, a library's error text)
        self.items.append(
            dict(
                table=table,
                row=row,
                column=None if column is None else escape_controls(mask_identifiers(str(column))),
                value=mask_value(value),
                check=check,
                message=cap_text(escape_controls(mask_identifiers(message)), 1000),
            )
        )

    def column(self, t: Any, column: str, check: str, message: str, value: Any = None) -> None:
        """A failure of a whole column of table ``t`` (no row)."""
        self.add(t.name, None, column, value, check, message)

    def cell(self, t: Any, i: int, column: str, value: Any, check: str, message: str) -> None:
        """A failure of the cell in data row ``i`` (position) of table ``t``."""
        self.add(t.name, t.rows[i], column, value, check, message)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.items, columns=FAILURE_COLUMNS)
        df["row"] = pd.array(df["row"].tolist(), dtype="Int64")
        return df.astype({"value": object})

    def __len__(self) -> int:
        return len(self.items)


def suggest(value: str, valid: list[str], what: str) -> str:
    close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
    if not close:
        low = {v.lower(): v for v in valid}
        close = [low[value.lower()]] if value.lower() in low else []
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"{mask_value(value)!r} is not {what}{hint} valid labels are {valid}"


@dataclass
class Ctx:
    spec: TrialSpec
    log: Log
    warnings: list[str]
