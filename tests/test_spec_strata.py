"""Issue 20.2: a wrong ``strata:`` entry must not silently drop the stratification factor.

``strata: [kommun]`` where ``columns:`` maps the file column ``kommun`` to the role ``site``
used to pass ``validate`` and ``run`` with the models unadjusted; now the trial spec is an
error naming the entry and the role to use, and ``analyze`` refuses a stratum that is not a
variable of the trial instead of dropping it with a note.
"""

from __future__ import annotations

import shutil

import pytest
import yaml

import peerstats
from peerstats.data.trial_spec import read_spec
from peerstats.exceptions import ModelSpecificationError, SpecError


def _copy(tmp_path):
    src = peerstats.datasets.path("peer_recovery").parent
    dst = tmp_path / "trial"
    shutil.copytree(src, dst)
    return dst


def test_strata_naming_a_mapped_file_column_is_a_spec_error(tmp_path):
    dst = _copy(tmp_path)
    raw = yaml.safe_load((dst / "spec.yaml").read_text())
    raw["columns"]["site"] = "kommun"
    raw["strata"] = ["kommun"]
    for name in ("participants.csv", "assessments.csv"):
        p = dst / name
        head, rest = p.read_text().split("\n", 1)
        p.write_text(
            ",".join("kommun" if c == "site" else c for c in head.split(",")) + "\n" + rest
        )
    (dst / "spec.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(SpecError, match=r"strata: 'kommun'.*Did you mean 'site'\?"):
        read_spec(dst / "spec.yaml")


def test_analyze_refuses_an_unknown_stratum_instead_of_dropping_it():
    import dataclasses

    trial = peerstats.datasets.load("peer_recovery")
    spec = dataclasses.replace(trial.spec, strata=("kommun",))
    object.__setattr__(
        trial, "_spec", spec
    )  # a spec whose stratum resolves to no variable (bypassing validation)
    with pytest.raises(ModelSpecificationError, match=r"stratification factor\(s\) \['kommun'\]"):
        peerstats.analyze(trial, outcome="qpr15")
