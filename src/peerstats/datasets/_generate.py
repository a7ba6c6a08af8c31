"""Deterministic generator of the bundled synthetic example trials.

Every bundled dataset under ``peerstats/datasets/data/<name>/`` is written by this module from a
fixed seed (:data:`SEEDS`), and a test regenerates each one and compares the files byte for byte,
so the bundled data cannot drift from the generator. Rewrite all bundled data with::

    python -m peerstats.datasets._generate

The data are SYNTHETIC. They mimic the designs of published trials of peer support (see
``DOMAIN.md``) but contain no real participant.

How the data are made
---------------------
Each outcome is first generated as a *keyed score* (the scale's total, or its item mean for
mean-scored instruments; higher = more of what the instrument's total measures) from a trial
model: visit means per arm, a subject-level multivariate normal with an exchangeable-ish
correlation across visits, the treatment effect and, for group-delivered arms, a delivery-group
random intercept at post-baseline visits. Items are then drawn around the keyed score
(:func:`_items`): item ``j`` of row ``i`` is ``round(s_i / k + d_j + u_ij)`` clipped to the item
range, where ``d_j`` are fixed item difficulties and ``u_i`` is zero-sum noise across the ``k``
items. Zero-sum noise leaves the total unchanged (up to rounding and clipping) and sets
Cronbach's alpha: ``alpha = 1 - k^2 var(u) / ((k - 1) var(total))``. Reverse-keyed items are
written raw (``min + max - keyed``), as a participant answers them.

Where things are
----------------
Each trial's design (arms, sites, covariate distributions, outcome model, dropout, spec and
README text) is data: ``data/_designs/<name>.yaml``. The steps shared by the trials (allocation,
covariates, scores, items, dropout, writing) are in :mod:`peerstats.datasets._build`; the four
trials are short compositions of them in :mod:`peerstats.datasets._trials`; the registry,
economic and adverse-event columns of ``peer_recovery`` (each from its own random stream) in
:mod:`peerstats.datasets._registry`; the survey in :mod:`peerstats.datasets._survey`.

The seed of ``peer_recovery`` was chosen once, by trying seeds 1, 2, ... in order and keeping the
first whose realised data give, on the QPR-15 total (items prorated at 80%), an ANCOVA
treatment effect (post ~ baseline + site + arm) within 5 +/- 0.4 at post and 4.5 +/- 0.7 at fu3,
a delivery-group ICC between 0.035 and 0.07 (statsmodels MixedLM, REML, peer arm,
post ~ baseline + site, random intercept per group) and baseline arm means within 1.5 points:
the design values are the truth, the realised ones are what a user will estimate, and for a
teaching example they should not be far apart. The other seeds are arbitrary fixed numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from peerstats.datasets._build import DATA_DIR, SCALES, SEEDS, Scale
from peerstats.datasets._survey import PUBLISHED, _survey
from peerstats.datasets._trials import (
    _icbt_feasibility,
    _icbt_peer,
    _peer_recovery,
    _social_inclusion,
)

__all__ = ["SEEDS", "DATA_DIR", "generate", "generate_all", "SCALES", "Scale", "PUBLISHED"]

# --------------------------------------------------------------------------------------------
_GENERATORS: dict[str, Callable[[Path, int], None]] = {
    "peer_recovery": _peer_recovery,
    "icbt_peer": _icbt_peer,
    "icbt_feasibility": _icbt_feasibility,
    "social_inclusion": _social_inclusion,
    "peer_supporter_survey": _survey,
}


def generate(name: str, out_dir: str | Path, *, seed: int | None = None) -> Path:
    """Write the files of one example dataset into ``out_dir`` and return its spec path.

    Parameters
    ----------
    name
        One of :func:`peerstats.datasets.list_datasets`.
    out_dir
        Folder to write to (created if needed). Existing files of the same names are replaced.
    seed
        Seed of ``numpy.random.default_rng``; default the bundled dataset's seed, which
        reproduces the bundled files byte for byte.

    Returns
    -------
    pathlib.Path
        The spec (``spec.yaml``, or ``survey.yaml`` for the survey).
    """
    from peerstats.exceptions import SpecError

    if name not in _GENERATORS:
        raise SpecError(f"{name!r} is not a bundled dataset; datasets are {sorted(_GENERATORS)}")
    out = Path(out_dir)
    _GENERATORS[name](out, SEEDS[name] if seed is None else int(seed))
    return out / ("survey.yaml" if name == "peer_supporter_survey" else "spec.yaml")


def generate_all(root: str | Path = DATA_DIR) -> list[Path]:
    """Rewrite every bundled dataset under ``root/<name>/`` with its bundled seed."""
    return [generate(name, Path(root) / name) for name in _GENERATORS]


if __name__ == "__main__":  # pragma: no cover
    for p in generate_all(sys.argv[1] if len(sys.argv) > 1 else DATA_DIR):
        print(p)
