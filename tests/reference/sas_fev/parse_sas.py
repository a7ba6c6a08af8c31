"""Parse the SAS PROC MIXED listings in this folder into ``sas_fev.json``.

The ``.txt`` listings are the source of truth (SAS output published by the R package mmrm,
Apache-2.0, design/SAS); this script only transcribes the printed numbers so the tests can read
them. Run from anywhere::

    python tests/reference/sas_fev/parse_sas.py

Blocks read per listing: Model Information, Class Level Information (level order; SAS's
reference level is the last one), Iteration History (full-precision -2 (Res) Log Likelihood from
the last iteration), Covariance Parameter Estimates, Fit Statistics, Solution for Fixed Effects,
Type 3 Tests of Fixed Effects, Least Squares Means and their Differences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
PAGE_HEADER = re.compile(r"The SAS System|The Mixed Procedure")


def _lines(path: Path) -> list[str]:
    return [ln.rstrip() for ln in path.read_text().splitlines() if not PAGE_HEADER.search(ln)]


def _num(tok: str) -> float | None:
    tok = tok.strip()
    if tok in {".", ""}:
        return None
    if tok.startswith("<"):
        return float(tok[1:])
    return float(tok)


def _is_num(tok: str) -> bool:
    try:
        _num(tok)
        return True
    except ValueError:
        return False


def _block(lines: list[str], title: str) -> list[str]:
    """All non-empty lines after every occurrence of ``title`` up to the next block title."""
    titles = {
        "Model Information",
        "Class Level Information",
        "Dimensions",
        "Number of Observations",
        "Iteration History",
        "Covariance Parameter Estimates",
        "Fit Statistics",
        "Null Model Likelihood Ratio Test",
        "Solution for Fixed Effects",
        "Type 3 Tests of Fixed Effects",
        "Least Squares Means",
        "Differences of Least Squares Means",
        "Tests of Effect Slices",
        "Estimated R Matrix",
        "Estimated R Correlation",
        "Convergence criteria met.",
    }
    out: list[str] = []
    inside = False
    for ln in lines:
        s = ln.strip()
        if any(s.startswith(t) for t in titles):
            inside = s.startswith(title) and not (
                title == "Least Squares Means" and s.startswith("Differences")
            )
            continue
        if inside and s:
            out.append(ln)
    return out


def _model_info(lines: list[str]) -> dict:
    info = {}
    for ln in _block(lines, "Model Information"):
        parts = re.split(r"\s{2,}", ln.strip())
        if len(parts) == 2:
            info[parts[0]] = parts[1]
        elif len(parts) == 1 and info:
            last = list(info)[-1]
            info[last] += " " + parts[0]
    return info


def _class_levels(lines: list[str]) -> dict[str, list[str]]:
    levels: dict[str, list[str]] = {}
    current = None
    for ln in _block(lines, "Class Level Information"):
        parts = re.split(r"\s{2,}", ln.strip())
        if parts[0] == "Class":
            continue
        if len(parts) >= 3 and parts[1].isdigit():
            current = parts[0]
            levels[current] = [parts[2]]
        elif current is not None:
            levels[current].append(ln.strip())
    out = {}
    for name, chunks in levels.items():
        if name == "USUBJID":
            continue
        text = " ".join(chunks)
        if name == "RACE":
            out[name] = re.findall(r"Black or African American|White|Asian", text)
        else:
            out[name] = text.split()
    return out


def _iteration(lines: list[str]) -> float:
    rows = [ln.split() for ln in _block(lines, "Iteration History")]
    rows = [r for r in rows if r and r[0].isdigit()]
    return float(rows[-1][2])


def _cov_parms(lines: list[str]) -> list[dict]:
    out = []
    for ln in _block(lines, "Covariance Parameter Estimates"):
        parts = re.split(r"\s{2,}", ln.strip())
        if parts[0] in {"Cov", "Parm", "Cov Parm"} or parts[0].startswith("Cov Parm"):
            continue
        name = parts[0]
        rest = parts[1:]
        group = None
        if rest and rest[0] == "USUBJID":
            rest = rest[1:]
        if rest and rest[0].startswith("ARMCD"):
            group = rest[0].split()[1]
            rest = rest[1:]
        est, alpha, lower, upper = (_num(t) for t in rest[:4])
        out.append({"parm": name, "group": group, "estimate": est, "lower": lower, "upper": upper})
    return out


def _fit_stats(lines: list[str]) -> dict:
    out = {}
    for ln in _block(lines, "Fit Statistics"):
        parts = re.split(r"\s{2,}", ln.strip())
        if len(parts) == 2:
            out[parts[0]] = float(parts[1])
    return out


def _levels_of(tokens: list[str], classes: dict[str, list[str]]) -> dict[str, str]:
    found = {}
    for tok in tokens:
        for name, lev in classes.items():
            if tok in lev and name not in found:
                found[name] = tok
                break
    return found


def _solution(lines: list[str], classes: dict) -> list[dict]:
    out = []
    for ln in _block(lines, "Solution for Fixed Effects"):
        parts = re.split(r"\s{2,}", ln.strip())
        if parts[0] in {"Standard", "Effect"}:
            continue
        nums_start = next(i for i, t in enumerate(parts) if i > 0 and _is_num(t))
        effect, levels, nums = parts[0], parts[1:nums_start], parts[nums_start:]
        if len(nums) > 1 and nums[1] == ".":
            continue  # aliased (reference) level, printed as 0
        # SAS packs "t Value" and "Pr > |t|" with single spaces sometimes: split further
        nums = " ".join(nums).split()
        rec = {
            "effect": effect,
            "levels": _levels_of(levels, classes),
            "estimate": _num(nums[0]),
            "std_error": _num(nums[1]),
            "df": _num(nums[2]),
            "statistic": _num(nums[3]),
        }
        if len(nums) >= 8:
            rec["ci_lower"], rec["ci_upper"] = _num(nums[6]), _num(nums[7])
        out.append(rec)
    return out


def _type3(lines: list[str]) -> list[dict]:
    out = []
    for ln in _block(lines, "Type 3 Tests of Fixed Effects"):
        parts = ln.split()
        if len(parts) < 5 or not _is_num(parts[1]):
            continue
        out.append(
            {
                "effect": parts[0],
                "num_df": _num(parts[1]),
                "den_df": _num(parts[2]),
                "chisq": _num(parts[3]),
                "f_value": _num(parts[4]),
            }
        )
    return out


def _lsmeans(lines: list[str], classes: dict) -> list[dict]:
    out = []
    for ln in _block(lines, "Least Squares Means"):
        parts = ln.split()
        if parts[0] != "AVISIT*ARMCD":
            continue
        out.append(
            {
                "AVISIT": parts[1],
                "ARMCD": parts[2],
                "estimate": _num(parts[3]),
                "std_error": _num(parts[4]),
                "df": _num(parts[5]),
                "statistic": _num(parts[6]),
                "ci_lower": _num(parts[9]),
                "ci_upper": _num(parts[10]),
            }
        )
    return out


def _diffs(lines: list[str]) -> list[dict]:
    out = []
    for ln in _block(lines, "Differences of Least Squares Means"):
        parts = ln.split()
        if parts[0] != "AVISIT*ARMCD":
            continue
        out.append(
            {
                "AVISIT": parts[1],
                "ARMCD": parts[2],
                "_AVISIT": parts[3],
                "_ARMCD": parts[4],
                "estimate": _num(parts[5]),
                "std_error": _num(parts[6]),
                "df": _num(parts[7]),
                "statistic": _num(parts[8]),
                "ci_lower": _num(parts[11]),
                "ci_upper": _num(parts[12]),
            }
        )
    return out


def parse(path: Path) -> dict:
    lines = _lines(path)
    info = _model_info(lines)
    classes = _class_levels(lines)
    return {
        "file": path.name,
        "method": info["Estimation Method"],
        "structure": info["Covariance Structure"],
        "group": info.get("Group Effect"),
        "weight": info.get("Weight Variable"),
        "ddfm": info["Degrees of Freedom Method"],
        "class_levels": classes,
        "neg2loglik": _iteration(lines),
        "fit_statistics": _fit_stats(lines),
        "cov_parms": _cov_parms(lines),
        "solution": _solution(lines, classes),
        "type3": _type3(lines),
        "lsmeans": _lsmeans(lines, classes),
        "diffs": _diffs(lines),
    }


def main() -> None:
    result = {p.stem: parse(p) for p in sorted(HERE.glob("sas_*.txt"))}
    (HERE / "sas_fev.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {len(result)} listings to {HERE / 'sas_fev.json'}")


if __name__ == "__main__":
    main()
