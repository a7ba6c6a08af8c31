"""``peerstats run --blinded``: the open report of a data-monitoring committee.

The arms are recoded A, B, ... before anything is computed, by a permutation drawn from a
random secret (issue 20.1: not from the analysis spec's ``seed``, which the report and the SAP
print, so anyone could recompute it). The secret and the coding are written only to the closed
key file of ``peerstats run --blinded --key FILE`` (created when absent; an existing file
reproduces the same coding), never to the open report. Without ``--key`` the coding is fresh
each run and kept nowhere. Every between-arm comparison (model contrasts,
p-values, effect sizes, standardised differences, responder comparisons, sensitivity
analyses) is left out. What remains is descriptive by coded arm: CONSORT flow, baseline
characteristics, observed outcomes, harms, trajectories. The reference arm, the group-delivered
arm and delivery groups are not named. CONSORT boxes that exist for the intervention arm only
(received, did not receive, discontinued) and every reason are pooled across the arms
(:func:`blind_flow`), so the flow's structure does not tell the arms apart either.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "blind_trial",
    "closed_run",
    "blind_flow",
    "run_blinded",
    "BLINDED_TABLES",
    "BLINDED_FIGURES",
    "POOLED_BOXES",
]

BLINDED_TABLES = ("consort", "table_one", "outcomes", "harms")
BLINDED_FIGURES = ("consort", "trajectories", "change")


def _codes(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _secret(key_file: Any) -> str:
    """The coding secret: read from ``key_file`` if it exists, else drawn (and written there)."""
    import json
    import secrets
    from pathlib import Path

    if key_file is not None and Path(key_file).is_file():
        try:
            return str(json.loads(Path(key_file).read_text(encoding="utf-8"))["secret"])
        except (ValueError, KeyError, TypeError) as exc:
            from peerstats.exceptions import SpecError

            raise SpecError(f"--key {key_file}: not a peerstats key file ({exc})") from exc
    return secrets.token_hex(32)


def _coding(arms: list[str], secret: str) -> dict[str, str]:
    """``{arm: code}``: a permutation of the codes drawn from the secret."""
    import hashlib

    state = int.from_bytes(hashlib.sha256(secret.encode()).digest(), "big")
    order = np.random.default_rng(state).permutation(len(arms))
    codes = _codes(len(arms))
    return {arms[i]: codes[k] for k, i in enumerate(order)}


def blind_trial(
    trial: Any, seed: Any = None, *, key_file: Any = None
) -> tuple[Any, dict[str, str]]:
    """A copy of ``trial`` whose arms are coded A, B, ... by a permutation drawn from a secret
    (``key_file``: read, or created with the secret and the coding); returns the trial and the
    key ``{original: code}`` (for the caller to keep, not to print). ``seed`` is ignored (kept
    for callers of the old signature): the coding never follows the spec's seed."""
    import json
    from pathlib import Path

    from peerstats.data.trial import _TOKEN, Trial

    ts = trial.spec
    arms = [str(a) for a in ts.arms.levels]
    secret = _secret(key_file)
    codes = _codes(len(arms))
    key = _coding(arms, secret)
    if key_file is not None and not Path(key_file).is_file():
        Path(key_file).write_text(
            json.dumps({"secret": secret, "coding": key, "closed": "DMC key: keep closed"}),
            encoding="utf-8",
        )

    def recode(df: pd.DataFrame | None) -> pd.DataFrame | None:
        if df is None or "arm" not in df.columns:
            return df
        # delivery groups and peers exist in the group-delivered arm only: they would name it
        out = df.drop(columns=[c for c in ("group", "peer") if c in df.columns])
        values = out["arm"].astype("string").map(key)
        out["arm"] = pd.Categorical(values, categories=codes, ordered=True)
        return out

    spec = dataclasses.replace(
        ts,
        arms=dataclasses.replace(
            ts.arms,
            levels=tuple(codes),
            reference=None,  # which code is the control would unblind
            group_delivered=(),
        ),
        description="",
    )
    blinded = Trial(
        spec=spec,
        participants=recode(trial.participants),
        assessments=recode(trial.assessments),
        unrandomised_assessments=recode(trial.unrandomised_assessments),
        sessions=recode(trial.sessions),
        scoring=trial.scoring,
        warnings=list(trial.warnings),
        _token=_TOKEN,
    )
    return blinded, key


def blind_spec(spec: Any) -> Any:
    """The analysis spec of the blinded run: only descriptive tables and figures, no arm
    labels (they would name the arms), no responders, estimand or sensitivity analyses."""
    tables = tuple(t for t in (spec.tables or BLINDED_TABLES) if t in BLINDED_TABLES)
    figures = tuple(f for f in (spec.figures or BLINDED_FIGURES) if f in BLINDED_FIGURES)
    labels = {k: v for k, v in spec.labels.items() if k != "arms"}
    changes: dict[str, Any] = {"tables": tables, "figures": figures, "labels": labels}
    changes["responders"] = ()
    for name in ("estimand", "sensitivity"):
        if hasattr(spec, name):
            changes[name] = None if name == "estimand" else ()
    changes["description"] = ""
    return dataclasses.replace(spec, **changes)


def run_blinded(run: Any, progress: Any, *, pooled: bool = True) -> Any:
    """Fill ``run`` (already holding the blinded trial and spec) with the descriptive parts and
    the report; ``pooled=False`` keeps the CONSORT flow by arm (the closed report)."""
    import peerstats
    from peerstats.describe.labels import relabel
    from peerstats.pipeline._common import _collect
    from peerstats.pipeline._display import display_labels, read_adverse_events
    from peerstats.pipeline._figures import draw_figures
    from peerstats.pipeline._jsonio import frame_keyed
    from peerstats.pipeline.report import render_report

    spec, trial, res = run.spec, run.trial, run.results
    lab = display_labels(trial, spec)
    res["blinded"] = {
        "arms": "coded A, B, ... by a permutation drawn from a secret kept by the unblinded "
        "statistician (not derivable from this report)",
        "omitted": "every between-arm comparison (differences, p-values, effect sizes)",
        **res.get("blinded", {}),
    }
    res["models"] = {}
    flow = None
    with progress.step("descriptive tables (blinded)"), _collect(run.warnings):
        if spec.wants_table("consort") or spec.wants_figure("consort"):
            flow = peerstats.consort(trial)
            flow = blind_flow(flow) if pooled else flow  # no arm-only rows (issue 20.1)
            res["consort"] = frame_keyed(flow.counts, ["stage", "box", "arm", "visit", "reason"])
            run.tables["consort"] = flow.counts
            run.display_tables["consort"] = relabel(
                pooled_table(flow.to_table()) if pooled else flow.to_table(), lab
            )
        if spec.wants_table("table_one"):
            t1 = peerstats.table_one(
                trial,
                smd=False,
                labels={
                    **dict(lab.covariates),
                    **{f"{o} (baseline)": f"{lab.outcome(o)} (baseline)" for o in lab.outcomes},
                },
                level_labels=lab.levels,
            )
            res["table_one"] = frame_keyed(t1.data, ["variable", "level", "arm", "statistic"])
            run.tables["table_one"] = t1.data
            run.display_tables["table_one"] = t1
            run.html_tables["table_one"] = t1.render("html")
        if spec.wants_table("outcomes"):
            _observed_outcomes(run, lab)
        if getattr(trial.spec, "adverse_events", None) is not None and spec.wants_table("harms"):
            ht = read_adverse_events(trial, lab)
            res["harms"] = frame_keyed(ht.data, ["category", "arm"])
            run.tables["harms"] = ht.data
            run.display_tables["harms"] = ht
            run.html_tables["harms"] = ht.render("html")
    with progress.step("drawing the figures"), _collect(run.warnings):
        draw_figures(run, flow, None)
    res["warnings"] = list(run.warnings)
    with progress.step("writing the report"):
        run.report_html = render_report(run)
    return run


def _observed_outcomes(run: Any, lab: Any) -> None:
    """Observed means per coded arm and visit of the scales (no comparison)."""
    from peerstats.describe.render import Table, ci_name
    from peerstats.figures.trajectories import observed_means
    from peerstats.pipeline._jsonio import frame_keyed

    spec, trial, res = run.spec, run.trial, run.results
    level = spec.model.level
    frames = []
    for o in spec.outcomes:
        if spec.outcome_type(o) != "continuous":
            continue  # observed means at visits: scales only
        m = observed_means(trial.assessments, o, level=level)
        m.insert(0, "outcome", o)
        frames.append(m)
    obs = pd.concat(frames, ignore_index=True)
    obs["arm"] = obs["arm"].astype(str)
    obs["visit"] = obs["visit"].astype(str)
    res["observed"] = frame_keyed(obs, ["outcome", "visit", "arm"])
    run.tables["outcomes"] = obs
    disp = pd.DataFrame(
        {
            "Outcome": [lab.outcome(o) for o in obs["outcome"]],
            "Visit": [lab.visit(v) for v in obs["visit"]],
            "Arm": obs["arm"],
            "n": obs["n"].astype(int),
            f"Mean ({ci_name(level)})": [
                f"{m:z.2f} ({lo:z.2f} to {hi:z.2f})"
                for m, lo, hi in zip(obs["mean"], obs["ci_lower"], obs["ci_upper"])
            ],
            "SD": [f"{s:z.2f}" for s in obs["sd"]],
        }
    )
    t = Table(
        obs,
        disp,
        caption="Observed outcomes by coded arm (blinded)",
        notes=["Blinded: arms are coded; no between-arm comparison is shown."],
    )
    run.display_tables["outcomes"] = t
    run.html_tables["outcomes"] = t.render("html")


#: CONSORT boxes about receiving or stopping the intervention: they exist for the intervention
#: arm only (or mean something else in the control arm), so the open report pools them.
POOLED_BOXES = ("received", "not_received", "discontinued", "started", "not_started")


def blind_flow(flow: Any) -> Any:
    """The CONSORT flow of the open DMC report: nothing in its structure names an arm.

    Boxes about the intervention (:data:`POOLED_BOXES`: received, did not receive,
    discontinued, with their reasons) are pooled across the arms (``arm`` missing), and so is
    every reason (e.g. "did not want to attend a group" exists in the group-delivered arm
    only); the totals of the boxes every arm has (allocated, lost to follow-up at each visit,
    analysed, excluded from analysis) stay by coded arm. Pooled rows are ordered by box, visit
    and count, never by arm, so the flow reads the same whichever arm got which code (issue
    20.1). The closed report keeps the flow by arm."""
    from peerstats.figures.consort import _BOX_LABELS, NOT_RECORDED

    c = flow.counts
    armed = c["arm"].notna()
    pool = armed & (c["box"].isin(POOLED_BOXES) | c["reason"].notna())
    kept = c[~pool]
    src = c[pool].assign(visit=c["visit"].astype(object).where(c["visit"].notna(), ""))
    src = src.assign(reason=src["reason"].astype(object).where(src["reason"].notna(), ""))
    summed = src.groupby(["stage", "box", "visit", "reason"], sort=False, as_index=False)["n"].sum()
    boxes = list(_BOX_LABELS)
    visits = ["", *map(str, flow.visits)]
    summed["_order"] = [
        (
            boxes.index(b) if b in boxes else len(boxes),
            visits.index(str(v)) if str(v) in visits else len(visits),
            r != "",
            r == NOT_RECORDED,
            -n,
            r,
        )
        for b, v, r, n in zip(summed["box"], summed["visit"], summed["reason"], summed["n"])
    ]
    summed = summed.sort_values("_order", kind="stable").drop(columns="_order")
    pooled = pd.DataFrame(
        {
            "stage": summed["stage"],
            "box": summed["box"],
            "arm": None,
            "visit": [v if v != "" else None for v in summed["visit"]],
            "reason": [r if r != "" else None for r in summed["reason"]],
            "n": summed["n"].astype(int),
        }
    )
    counts = pd.concat([kept, pooled], ignore_index=True)
    for col in ("arm", "visit", "reason"):
        counts[col] = counts[col].astype(object).where(counts[col].notna(), None)
    counts["n"] = counts["n"].astype(int)
    return dataclasses.replace(flow, counts=counts, clusters=None)


def pooled_table(table: Any) -> Any:
    """The CONSORT table of the open report: pooled rows say so in the arm column."""
    disp = table.display.copy()
    pooled = table.data["arm"].isna().to_numpy() & (table.data["stage"] != "enrolment").to_numpy()
    disp.loc[pooled, "Arm"] = "all arms (pooled)"
    table.display = disp
    return table


def closed_run(open_run: Any, spec: Any, trial: Any, key_file: Any, progress: Any) -> Any:
    """The closed DMC report of ``peerstats run --blinded --key FILE``: the same descriptive
    tables and figures as the open report, by coded arm with the code broken (each arm's name
    next to its code) and the CONSORT flow by arm, not pooled. ``spec`` is the unblinded
    analysis spec and ``trial`` the unblinded trial (for the arms' names); the coding is
    drawn again from the secret in ``key_file``, as :func:`blind_trial` drew it. It is written
    to its own folder next to the open one (``<out>-closed``), never inside it, so the open
    folder can be sent as it is; DMC charters give the closed report to the committee only."""
    from peerstats.pipeline._common import AnalysisRun
    from peerstats.pipeline._manifest import results_header

    coding = _coding([str(a) for a in trial.spec.arms.levels], _secret(key_file))
    names = {code: f"{code} = {spec.label('arms', arm)}" for arm, code in coding.items()}
    cspec = dataclasses.replace(open_run.spec, labels={**open_run.spec.labels, "arms": names})
    run = AnalysisRun(spec=cspec, trial=open_run.trial)
    run.warnings.extend(w for w in open_run.warnings if w.startswith("data: "))
    run.manifest = dict(open_run.manifest)
    run.results = results_header(cspec, open_run.trial)
    run.results["blinded"] = {
        "closed": "CLOSED report for the data-monitoring committee only: the code is broken",
        "coding": {code: str(arm) for arm, code in coding.items()},
        "arm_names": names,
    }
    return run_blinded(run, progress, pooled=False)
