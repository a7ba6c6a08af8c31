"""Bundled synthetic example trials (and one survey) and the generator that writes them.

Every dataset is SYNTHETIC: written by :mod:`peerstats.datasets._generate` from a fixed seed,
in the design of a published study of peer support (see each folder's ``README.txt``).

==========================  ===========================================================
``peer_recovery``           Danish PEER design: 5 municipalities, 296 randomised
                            (145 / 151), group-delivered peer arm (partially nested),
                            QPR-15 primary, Empowerment Scale, MANSA, WSAS
``icbt_peer``               iCBT for anxiety with vs without peer support, 60 / 60,
                            GAD-7 and Empowerment Scale, 8 modules
``icbt_feasibility``        single-arm feasibility study, 15 approached, 9 with data,
                            GAD-7, BAI, PHQ-9, Empowerment Scale, adherence
``social_inclusion``        UPSIDES design: 6 sites, 305 / 310, individual peer support vs
                            wait-list, Social Inclusion Scale primary
``peer_supporter_survey``   national survey of peer supporters (seed 003): respondents
                            matching the published response counts and summaries
==========================  ===========================================================

Examples
--------
>>> from peerstats import datasets
>>> datasets.list_datasets()  # doctest: +NORMALIZE_WHITESPACE
['icbt_feasibility', 'icbt_peer', 'peer_recovery', 'peer_supporter_survey', 'social_inclusion']
>>> trial = datasets.load("peer_recovery")  # doctest: +SKIP
>>> survey = datasets.load("peer_supporter_survey")
>>> int(survey.response["responses"].sum())
44
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peerstats.exceptions import SpecError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from peerstats.data.trial import Trial

__all__ = ["list_datasets", "path", "load", "load_survey", "generate", "Survey"]

# the generator is imported lazily so that ``python -m peerstats.datasets._generate`` runs cleanly
_NAMES = (
    "icbt_feasibility",
    "icbt_peer",
    "peer_recovery",
    "peer_supporter_survey",
    "social_inclusion",
)

_SURVEYS = {"peer_supporter_survey"}


def list_datasets() -> list[str]:
    """Names of the bundled datasets, sorted."""
    return list(_NAMES)


def _folder(name: str) -> Path:
    if name not in _NAMES:
        raise SpecError(f"{name!r} is not a bundled dataset; datasets are {list_datasets()}")
    return Path(str(resources.files("peerstats").joinpath("datasets", "data", name)))


def path(name: str) -> Path:
    """Path of a bundled dataset's spec: ``spec.yaml`` (trials) or ``survey.yaml`` (the survey).

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Raises
    ------
    SpecError
        If ``name`` is not a bundled dataset.
    """
    folder = _folder(name)
    return folder / ("survey.yaml" if name in _SURVEYS else "spec.yaml")


@dataclass(frozen=True)
class Survey:
    """A descriptive survey (not a trial): respondent data, targets per region, published figures.

    Attributes
    ----------
    respondents
        One row per survey record (``respondent``, ``region``, then the variables).
    regions
        Target population per region (``region``, ``target``), in the published order.
    spec
        The parsed ``survey.yaml``.
    published
        The published figures (``published.yaml``), or an empty dict.
    """

    respondents: pd.DataFrame
    regions: pd.DataFrame
    spec: dict[str, Any]
    published: dict[str, Any] = field(default_factory=dict)

    @property
    def response(self) -> pd.DataFrame:
        """Responses, target and response rate (%) per region (records without a region are not
        counted; they are in :attr:`respondents`)."""
        counts = self.respondents["region"].value_counts()
        out = self.regions[["region", "target"]].copy()
        out["responses"] = [int(counts.get(r, 0)) for r in out["region"]]
        out["rate_percent"] = 100.0 * out["responses"] / out["target"]
        return out[["region", "responses", "target", "rate_percent"]].reset_index(drop=True)

    def __repr__(self) -> str:
        name = self.spec.get("survey", {}).get("name", "survey")
        return (
            f"Survey({name!r}: {len(self.respondents)} records, {len(self.regions)} regions, "
            f"variables {list(self.spec.get('variables', {}))})"
        )


def load_survey(spec_path: str | Path) -> Survey:
    """Read a survey spec (``survey.yaml``, format in ``docs/CONTRACTS.md``) into a :class:`Survey`.

    Raises
    ------
    SpecError
        If the spec lacks ``data.respondents`` or ``data.regions``, or a file is missing.
    """
    import pandas as pd
    import yaml

    spec_path = Path(spec_path)
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    data = (spec or {}).get("data") or {}
    missing = [k for k in ("respondents", "regions") if k not in data]
    if missing:
        raise SpecError(
            f"survey spec {spec_path} has no data.{missing[0]}; data needs respondents and regions"
        )
    base = spec_path.parent
    files = {k: base / data[k] for k in ("respondents", "regions")}
    for key, file in files.items():
        if not file.is_file():
            raise SpecError(f"survey spec {spec_path}: data.{key} file {file} does not exist")
    cols = spec.get("columns") or {}
    rename_r = {
        cols.get("respondent", "respondent"): "respondent",
        cols.get("region", "region"): "region",
    }
    respondents = pd.read_csv(files["respondents"], dtype={k: "string" for k in rename_r})
    respondents = respondents.rename(columns=rename_r)
    regions = pd.read_csv(files["regions"]).rename(
        columns={cols.get("region", "region"): "region", cols.get("target", "target"): "target"}
    )
    published: dict[str, Any] = {}
    if spec.get("published"):
        published = yaml.safe_load((base / spec["published"]).read_text(encoding="utf-8")) or {}
    return Survey(respondents=respondents, regions=regions, spec=spec, published=published)


def generate(name: str, out_dir: str | Path, *, seed: int | None = None) -> Path:
    """Write the files of one example dataset into ``out_dir`` and return its spec path.

    With the default ``seed`` the files are byte-identical to the bundled ones; another seed gives
    another synthetic sample of the same design (its README and description name that seed).

    Parameters
    ----------
    name
        One of :func:`list_datasets`.
    out_dir
        Folder to write to (created if needed); files of the same names are replaced.
    seed
        Seed of ``numpy.random.default_rng``; default the bundled dataset's seed.

    Returns
    -------
    pathlib.Path
        The spec written (``spec.yaml``, or ``survey.yaml`` for the survey).

    Raises
    ------
    SpecError
        If ``name`` is not a bundled dataset.
    """
    from peerstats.datasets._generate import generate as _generate

    return _generate(name, out_dir, seed=seed)


def load(name: str) -> Trial | Survey:
    """Load a bundled dataset.

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    Trial or Survey
        The validated :class:`peerstats.data.trial.Trial` (via :func:`peerstats.load_trial`), or a
        :class:`Survey` for ``peer_supporter_survey``.

    Raises
    ------
    SpecError
        If ``name`` is not a bundled dataset.
    """
    spec = path(name)
    if name in _SURVEYS:
        return load_survey(spec)
    import peerstats

    return peerstats.load_trial(spec)
