"""The synthetic ``peer_supporter_survey``: respondents that reproduce published figures.

The published figures (:data:`PUBLISHED`) are real numbers transcribed from seed 003; the
respondent-level data are SYNTHETIC, built so that the published summaries come out exactly.
The survey spec and README text are data in ``data/_designs/peer_supporter_survey.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peerstats.datasets._build import (
    _SYNTHETIC,
    _pick,
    _write_csv,
    _write_readme,
    _write_yaml,
    load_design,
)

#: Published figures, transcribed from /work/shared/seeds/003_13c61be4355891c8.txt
#: ("Preliminära resultat från enkät", Userinvolve peer support project meeting).
PUBLISHED: dict[str, Any] = {
    "source": (
        "Seed 003 (/work/shared/seeds/003_13c61be4355891c8.txt): 'Peer support projektet inom "
        "Userinvolve - projektgruppsmöte', slides 'Preliminära resultat från enkät' "
        "(Argentzell, Markström et al.). Decimal commas converted to points."
    ),
    "response": {
        "columns": ["region", "responses", "target", "rate_percent"],
        "rows": [
            ["Stockholm", 7, 8, 87.5],
            ["Skåne", 19, 35, 54.28571429],
            ["Västra Götaland", 11, 14, 78.57],
            ["Norrland", 2, 2, 100],
            ["Jönköping", 4, 8, 50],
            ["Örebro", 1, 1, 100],
        ],
        "total": {"responses": 44, "target": 68},
        "note": "Rates printed with inconsistent precision (87,5; 54,28571429; 78,57); the total "
        "row gives no rate (44/68 = 64.7%).",
    },
    "age": {
        "label": "2. Ålder (age, years)",
        "min": 24,
        "max": 69,
        "mean": 43.27,
        "note": "Only min, max and mean are published; count, missing and SD are not.",
    },
    "months_worked": {
        "label": "15. Hur många månader har du (totalt) arbetat som peer supporter? "
        "(months worked as a peer supporter, in total)",
        "count": 43,
        "missing": 8,
        "missing_percent": 15.7,
        "unique": 30,
        "min": 0,
        "max": 120,
        "mean": 38.77,
        "sd": 35.80,
        "sum": 1667,
        "percentiles": {5: 1.20, 10: 3.40, 25: 7.50, 50: 22, 75: 67.50, 90: 88.80, 95: 99.30},
        "note": "count + missing = 51 records (8/51 = 15.7%), while the response table totals "
        "44: the survey export had 51 records, 7 of them without a region in the table. "
        "Percentiles match linear interpolation between order statistics (numpy/pandas default, "
        "Hyndman-Fan type 7); sd is the sample SD (ddof = 1).",
    },
}

_MONTHS_FIXED = {
    0: 0,
    2: 1,
    3: 3,
    4: 3,
    5: 5,
    10: 7,
    11: 8,
    21: 22,
    31: 67,
    32: 68,
    37: 88,
    38: 89,
    39: 93,
    40: 100,
    42: 120,
}


def _months_worked(rng: np.random.Generator) -> np.ndarray:
    """43 integer months whose count, unique, min, max, sum, mean, SD and the type-7 percentiles
    reproduce the published figures exactly (the order statistics the percentiles interpolate
    between are fixed; the others are found by a seeded local search)."""
    pub = PUBLISHED["months_worked"]
    n = pub["count"]
    free = [i for i in range(n) if i not in _MONTHS_FIXED]
    x = np.zeros(n, dtype=int)
    for i, v in _MONTHS_FIXED.items():
        x[i] = v

    def bounds(i: int) -> tuple[int, int]:
        lo = max([v for j, v in _MONTHS_FIXED.items() if j < i], default=0)
        hi = min([v for j, v in _MONTHS_FIXED.items() if j > i], default=pub["max"])
        return lo, hi

    bnd = {i: bounds(i) for i in free}
    for i in free:
        x[i] = rng.integers(bnd[i][0], bnd[i][1] + 1)
    while int(x.sum()) != pub["sum"]:  # reach the published sum one step at a time
        i = int(rng.choice(free))
        step = 1 if x.sum() < pub["sum"] else -1
        if bnd[i][0] <= x[i] + step <= bnd[i][1]:
            x[i] += step

    def loss(v: np.ndarray) -> tuple[float, bool]:
        sd = float(np.std(v, ddof=1))
        unique = len(np.unique(v))
        done = round(sd, 2) == pub["sd"] and unique == pub["unique"]
        return abs(sd - pub["sd"]) + 0.5 * abs(unique - pub["unique"]), done

    cur, done = loss(x)
    for _ in range(100_000):  # sum-preserving pair moves, accepted when not worse
        if done:
            break
        i, j = (int(v) for v in rng.choice(free, size=2, replace=False))
        d = int(rng.integers(1, 6))
        if not (bnd[i][0] <= x[i] + d <= bnd[i][1] and bnd[j][0] <= x[j] - d <= bnd[j][1]):
            continue
        x[i] += d
        x[j] -= d
        new, new_done = loss(x)
        if new <= cur:
            cur, done = new, new_done
        else:
            x[i] -= d
            x[j] += d
    if not done:  # pragma: no cover - the seed is fixed; a failure is a generator bug
        raise RuntimeError("months-worked search did not reproduce the published figures")
    return np.sort(x)


def _regions(rng: np.random.Generator, n_records: int) -> list[str | None]:
    """Region of each record: the published responses per region, then records without one."""
    resp = PUBLISHED["response"]["rows"]
    region = [r for r, k, _, _ in resp for _ in range(k)]
    region += [None] * (n_records - len(region))  # 7 records without a region in the table
    return [region[i] for i in rng.permutation(n_records)]


def _ages(rng: np.random.Generator, n_records: int, target_sum: int) -> np.ndarray:
    """Integer ages with min 24, max 69 and the sum that gives the published mean."""
    age = np.clip(np.rint(rng.normal(43.3, 11.0, n_records)), 25, 68).astype(int)
    age[0], age[1] = 24, 69
    while age.sum() != target_sum:
        i = int(rng.integers(2, n_records))
        step = 1 if age.sum() < target_sum else -1
        if 25 <= age[i] + step <= 68:
            age[i] += step
    return age[rng.permutation(n_records)]


def _respondents(rng: np.random.Generator, d: dict[str, Any]) -> pd.DataFrame:
    n_records = PUBLISHED["months_worked"]["count"] + PUBLISHED["months_worked"]["missing"]  # 51
    region = _regions(rng, n_records)
    # age: all 51 answered (count not published); integers, min 24, max 69, mean 43.27
    age = _ages(rng, n_records, d["age_sum"])
    months = _months_worked(rng)
    months_col = np.full(n_records, pd.NA, dtype=object)
    answered = np.sort(rng.choice(n_records, size=len(months), replace=False))
    months_col[answered] = rng.permutation(months)
    g = d["gender"]
    gender = _pick(rng, list(g), list(g.values()), n_records)
    return pd.DataFrame(
        {
            "respondent": [f"R{i + 1:02d}" for i in range(n_records)],
            "region": pd.array(region, dtype="string"),
            "gender": gender,
            "age": age,
            "months_worked": pd.array(months_col, dtype="Int64"),
        }
    )


def _survey(out: Path, seed: int) -> None:
    d, rng = load_design("peer_supporter_survey", seed)
    resp = PUBLISHED["response"]["rows"]
    targets = pd.DataFrame({"region": [r[0] for r in resp], "target": [r[2] for r in resp]})
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(_respondents(rng, d), out / "respondents.csv")
    _write_csv(targets, out / "regions.csv")
    survey = d["survey"]
    info = survey["survey"]
    info["description"] = info["description"] + " " + _SYNTHETIC.format(seed=seed)
    info["source"] = PUBLISHED["source"]
    _write_yaml(survey, out / "survey.yaml", d["header"].format(seed=seed))
    _write_yaml(PUBLISHED, out / "published.yaml", d["published_header"])
    _write_readme(out / "README.txt", d["readme"]["title"], seed, d["readme"]["body"])
