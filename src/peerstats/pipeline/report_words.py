"""Model formulas in words for the report (issue 21: no column code reaches what a person reads).

``results.json`` and ``manifest``-backed provenance keep the exact formula (``qpr15 ~
qpr15_baseline + site + arm * visit + (1 | subject) + (0 + delivered | group)``) for
reproducibility; the report's Model details appendix shows it with the spec's and the source's
labels: "QPR-15 ~ QPR-15 (baseline) + Municipality + Arm × Visit (with both main effects) +
random intercept per participant + random delivery group intercept for participants receiving
group-delivered support". Formatting only;
nothing here computes a statistic.
"""

from __future__ import annotations

import re

from peerstats.describe.labels import Labels

__all__ = ["formula_words", "name_words", "notes_words"]

_ROLE_WORDS = {
    "arm": "Arm",
    "visit": "Visit",
    "subject": "participant",
    "group": "delivery group",
    "delivered": "Group-delivered support received",
    "site": "Site",
}
_CALL = re.compile(r"^(?P<fn>[A-Za-z_][\w.]*)\((?P<arg>.*)\)$", re.S)
_RANDOM = re.compile(r"^\(\s*(?P<expr>[^|]+?)\s*\|\s*(?P<by>[^)]+?)\s*\)$")


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses and brackets."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [p for p in out if p]


def name_words(name: str, lab: Labels) -> str:
    """One column of a formula in words: outcome and covariate labels, ``<outcome>_baseline``
    as "<label> (baseline)", the roles (arm, visit, subject, group) in words; a name with no
    label is made readable (``living_alone`` -> "Living alone")."""
    from peerstats.pipeline._display import covariate_default_label

    name = name.strip()
    if name in lab.outcomes:
        return str(lab.outcomes[name])
    if name.endswith("_baseline") and name[: -len("_baseline")] in lab.outcomes:
        return f"{lab.outcomes[name[: -len('_baseline')]]} (baseline)"
    if name in lab.covariates:
        return str(lab.covariates[name])
    if name in _ROLE_WORDS:
        return _ROLE_WORDS[name]
    return covariate_default_label(name)


def _term_words(term: str, lab: Labels) -> str:
    """One fixed or random term of a formula in words."""
    term = term.strip()
    m = _RANDOM.match(term)
    if m is not None:
        expr = [p for p in _split_top(m.group("expr"), "+") if p not in ("0", "-1")]
        by = name_words(m.group("by"), lab)
        if expr in (["1"], []):
            return f"random intercept per {by}"
        if expr == ["delivered"]:  # the partially nested term: 1 for the group-delivered arm
            return f"random {by} intercept for participants receiving group-delivered support"
        what = ", ".join("intercept" if e == "1" else name_words(e, lab) for e in expr)
        return f"random {by} effect of {what}"
    m = _CALL.match(term)
    if m is not None:
        fn, arg = m.group("fn"), m.group("arg")
        inner = _term_words(arg, lab)
        return f"offset: {inner}" if fn == "offset" else f"{fn}({inner})"
    if "*" in term:
        parts = [name_words(p, lab) for p in _split_top(term, "*")]
        lower = "both main effects" if len(parts) == 2 else "all lower-order terms"
        return " × ".join(parts) + f" (with {lower})"
    if ":" in term:
        return " × ".join(name_words(p, lab) for p in _split_top(term, ":"))
    return name_words(term, lab)


def formula_words(formula: str, lab: Labels, outcome: str | None = None) -> str:
    """A model formula in words.

    Parameters
    ----------
    formula : str
        The exact formula of the fit (``y ~ a + b * c + (1 | subject)``), possibly followed by
        bracketed words (``[all visits, unstructured covariance]``), which are kept.
    lab : Labels
        The run's display labels.
    outcome : str, optional
        The outcome's display name for the left-hand side (a derived outcome's column, e.g.
        ``readmitted_12m``, is shown by the outcome's label).

    Returns
    -------
    str
        ``"<outcome> ~ <term> + <term> ..."`` with every column by its label.
    """
    text, _, tail = formula.partition("[")
    lhs, sep, rhs = text.partition("~")
    if not sep:
        return name_words(formula, lab)
    left = outcome if outcome is not None else name_words(lhs, lab)
    words = " + ".join(_term_words(t, lab) for t in _split_top(rhs, "+"))
    extra = f" [{tail}" if tail else ""
    return f"{left} ~ {words}{extra}"


def notes_words(text: str, codes: dict[str, str]) -> str:
    """A model note with column codes replaced by their labels (whole words only)."""
    for code in sorted(codes, key=len, reverse=True):
        if code != codes[code]:
            text = re.sub(rf"(?<![\w-]){re.escape(code)}(?![\w-])", codes[code], text)
    return text
