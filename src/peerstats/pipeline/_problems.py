"""How a spec's problems are listed in one SpecError (shared by the analysis spec and its
estimand section, below both)."""

from __future__ import annotations

from typing import Any

__all__ = ["_problem_text"]


def _problem_text(where: Any, problems: list[str], trial_spec: Any = None) -> str:
    head = f"analysis spec {where}"
    if trial_spec is not None:
        head += f" (trial {trial_spec.name!r})"
    n = len(problems)
    return f"{head}: {n} problem{'s' if n != 1 else ''}:\n" + "\n".join(
        f"  - {p}" for p in problems
    )
