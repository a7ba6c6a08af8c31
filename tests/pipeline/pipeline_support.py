"""Constants and helpers of the pipeline tests (imported by conftest and the test modules)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANALYSES = ROOT / "analyses"
EXPECTED = ANALYSES / "expected"
EXAMPLES = ["peer_recovery", "icbt_peer", "icbt_feasibility", "social_inclusion"]


def write_analysis(folder: Path, trial_spec: Path, **overrides) -> Path:
    """Write a minimal analysis spec for the feasibility trial copy; returns its path."""
    import yaml

    spec = {
        "analysis": {"name": "small"},
        "trial": str(trial_spec),
        "primary": {"outcome": "gad7", "visit": "post"},
        "figures": ["forest"],
        "tables": ["outcomes", "feasibility"],
    }
    spec.update(overrides)
    path = folder / "analysis.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path
