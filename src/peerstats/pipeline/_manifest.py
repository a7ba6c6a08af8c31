"""The provenance of a run: ``manifest.json`` (inputs' SHA-256, versions, platform, seed) and the
header of ``results.json`` (the analysis and the trial)."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_FORMAT", "DEPENDENCIES", "manifest", "results_header"]

RESULTS_FORMAT = "peerstats-results/1"
DEPENDENCIES = (
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "matplotlib",
    "formulaic",
    "jsonschema",
    "pyyaml",
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _input(path: Path, spec: Any) -> dict[str, str]:
    """One input: its path relative to the analysis spec's folder (identifiers masked, issue
    24.3) and the SHA-256 of the bytes the run read (issue 24.8), else of the file now."""
    from peerstats._identifiers import mask_identifiers
    from peerstats._provenance import digest

    path = Path(path)
    base = Path(spec.source).parent if getattr(spec, "source", None) else Path.cwd()
    try:
        shown = os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        shown = path.name
    return {"path": mask_identifiers(Path(shown).as_posix()), "sha256": digest(path) or _sha256(path)}


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("peerstats", *DEPENDENCIES):
        try:
            out[name] = _version(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _version(dist: Any) -> str:
    """``dist.version`` read from the metadata's header lines only (parsing the whole file,
    long description included, as ``importlib.metadata`` does, costs ~1.5 ms per package of
    a run's start; issue 22); the full parse when the header has no version."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the header
        if line.startswith("Version:"):
            return line[len("Version:"):].strip()
    return dist.version


def _input_files(spec: Any, trial_spec: Any) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if spec.source is not None:
        files["analysis_spec"] = spec.source
    files["trial_spec"] = Path(spec.trial_path)
    for role in ("participants", "assessments", "sessions", "adverse_events"):
        src = getattr(trial_spec, role, None)
        if src is not None:
            files[role] = Path(src.path)
    redcap = getattr(trial_spec, "redcap", None)
    if redcap is not None:  # the data dictionary gives the labels and types (issue 21)
        files["redcap_dictionary"] = Path(redcap.dictionary)
    return files


def _package_digest() -> str:
    """SHA-256 over the peerstats package files (.py, .json, .yaml), in path order."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".json", ".yaml") and "__pycache__" not in path.parts:
            if "datasets" in path.relative_to(root).parts[:1] and path.suffix != ".py":
                continue  # bundled example data are inputs (hashed under "inputs")
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def manifest(spec: Any, trial: Any, started: Any) -> dict[str, Any]:
    """``manifest.json`` as far as it is known before the run (outputs are added when
    written)."""
    files = _input_files(spec, trial.spec)
    return {
        "analysis": spec.name,
        "inputs": {k: _input(p, spec) for k, p in files.items()},
        "versions": {"python": platform.python_version(), **_versions()},
        # the version string is the same for every commit of a development install: a hash of
        # the package's own files (code, schemas, instrument definitions) tells them apart
        "peerstats_source_sha256": _package_digest(),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
        },
        "seed": spec.seed,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "results_format": RESULTS_FORMAT,
        "started": started.isoformat(timespec="seconds"),
    }


def is_single_arm(trial_spec: Any) -> bool:
    """A single-arm study (one arm, or the design says so)."""
    return trial_spec.design == "single-arm" or len(trial_spec.arms.levels) == 1


def results_header(spec: Any, trial: Any) -> dict[str, Any]:
    """``format``, ``analysis`` and ``trial`` of ``results.json``."""
    ts = trial.spec
    design = "single-arm" if is_single_arm(ts) else str(ts.design)
    part = trial.participants
    rand = part[part["randomised"].astype(bool)] if "randomised" in part.columns else part
    arms = [str(a) for a in ts.arms.levels]
    return {
        "format": RESULTS_FORMAT,
        "analysis": {"name": spec.name, "title": spec.title, "version": spec.version},
        "trial": {
            "name": ts.name,
            "design": design,
            "synthetic": bool(ts.synthetic),
            "arms": arms,
            "reference": str(ts.arms.reference) if ts.arms.reference else None,
            "group_delivered": [str(x) for x in ts.arms.group_delivered],
            "visits": [str(v) for v in ts.visits],
            "n_assessed": int(len(part)),
            "n_randomised": {a: int((rand["arm"].astype(str) == a).sum()) for a in arms},
        },
    }
