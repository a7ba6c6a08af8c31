"""The subject x visit fields shared by :class:`~peerstats.missing.impute.Draws` and
:class:`~peerstats.missing.imputations.Imputations` (the impute step carries them across)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True, repr=False, eq=False)
class _Cells:
    """The subject x visit data and the cells to impute: the fields that :class:`Draws` and
    :class:`Imputations` share (the impute step carries them from one to the other)."""

    method: str
    outcome: str
    subject: str
    visit: str
    arm: str
    subjects: pd.Index
    visits: tuple
    arm_levels: tuple
    frame: pd.DataFrame  # one row per subject x visit (subject-major), every column of data
    y: np.ndarray  # (n, T) outcomes kept (NaN: missing or set aside)
    target: np.ndarray  # (n, T) cells imputed
    missing: np.ndarray  # (n, T) originally missing
    set_aside: np.ndarray  # (n, T) observed after a non-MAR ICE, set aside and imputed
    arm_of: np.ndarray  # (n,) arm code per subject
    ice_visit: np.ndarray  # (n,) first non-MAR visit index (T: none)
    strategy: np.ndarray  # (n,) strategy per subject
    delta: np.ndarray  # (n, T) delta applied to imputed cells

    def __getstate__(self) -> dict:  # a Client does not pickle: drop it
        state = dict(self.__dict__)
        if "client" in state:
            state["client"] = None
        return state
