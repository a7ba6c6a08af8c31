"""``peerstats run``: an analysis spec in, a reproducible result folder out.

:func:`run_analysis` computes everything in memory through the public API (load and validate
the trial, fit the models, CONSORT, Table 1, outcome table, responders, feasibility, figures);
:func:`write_results` writes the folder atomically; :func:`run` does both.

The folder::

    report.html        one self-contained page (figures embedded, no network requests)
    results.json       every estimate, unrounded, stable keys; byte-identical for the same inputs
    tables/*.csv       the tidy tables (codes, unrounded)
    tables/*.docx      the tables as they read (labels, rounded), in Word
    tables/display/*.csv   the same as CSV (display-shaped)
    figures/*.svg      the figures
    manifest.json      SHA-256 of every input, versions, platform, seed, start and end time

Nothing here computes statistics of its own: every number comes from a public peerstats
function; this module only arranges the calls and the output.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from peerstats.exceptions import (
    ConvergenceError,
    ModelSpecificationError,
    SpecError,
)
from peerstats.pipeline._common import (  # noqa: F401  (re-exported: older imports)
    AnalysisRun,
    FittedOutcome,
    _collect,
    _digits,
    _fmt_p,
    _responder_name,
    _svg,
    coefficients,
    outcome_label,
    primary_sentences,
)
from peerstats.pipeline._display import (
    change_table,
    directions,
    display_labels,
)
from peerstats.pipeline._figures import draw_figures as _figures
from peerstats.pipeline._jsonio import dumps, frame_keyed, plain
from peerstats.pipeline.spec import AnalysisSpec, read_analysis_spec

__all__ = [
    "run",
    "run_analysis",
    "write_results",
    "AnalysisRun",
    "Progress",
    "RESULTS_FORMAT",
    "OutputBusyError",
    "output_lock",
    "clean_stale_folders",
]

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
    "pingouin",
)


# ----------------------------------------------------------------------------- progress
class Progress:
    """Step lines on a stream (stderr by default).

    On a terminal each step shows ``… step`` while it runs and is rewritten as
    ``✓ step (1.2 s)`` when done; elsewhere (logs, CI) one plain line per finished step.
    ``enabled=False`` is silent (``--quiet``).
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        """Time one step and report it."""
        t0 = time.perf_counter()
        if self.enabled and self.tty:
            self.stream.write(f"\u2026 {label}")
            self.stream.flush()
        try:
            yield
        except BaseException:
            if self.enabled:
                self.stream.write(("\r" if self.tty else "") + f"\u2717 {label}: failed\n")
                self.stream.flush()
            raise
        dt = time.perf_counter() - t0
        if self.enabled:
            if self.tty:
                self.stream.write(f"\r\u2713 {label} ({dt:.1f} s)\033[K\n")
            else:
                self.stream.write(f"{label} ... done ({dt:.1f} s)\n")
            self.stream.flush()


# ----------------------------------------------------------------------------- results


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("peerstats", *DEPENDENCIES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _input_files(spec: AnalysisSpec, trial_spec: Any) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if spec.source is not None:
        files["analysis_spec"] = spec.source
    files["trial_spec"] = Path(spec.trial_path)
    for role in ("participants", "assessments", "sessions", "adverse_events"):
        src = getattr(trial_spec, role, None)
        if src is not None:
            files[role] = Path(src.path)
    return files


# ----------------------------------------------------------------------------- models
def _fit_auto(trial: Any, outcome: str, spec: AnalysisSpec) -> FittedOutcome:
    import peerstats

    ta = peerstats.analyze(
        trial, outcome=outcome, df=spec.model.df, level=spec.model.level, vcov=spec.model.vcov
    )
    cov = (
        "unstructured across visits"
        if ta.model != "partially nested lmm"
        else (
            "random delivery-group intercept (group-delivered arm only), residual variance by arm"
        )
    )
    return FittedOutcome(
        outcome=outcome,
        model=ta.model,
        formula=ta.formula,
        fit=ta.fit,
        covariance=cov,
        contrasts=ta.contrasts,
        notes=tuple(ta.notes),
        icc=ta.icc,
        design_effect=ta.design_effect,
        n_groups=ta.n_groups,
        mean_group_size=ta.mean_group_size,
    )


def _fit_explicit(trial: Any, outcome: str, spec: AnalysisSpec) -> FittedOutcome:
    """``mmrm`` / ``lmm`` as the spec's model section states (post-baseline visits,
    ``outcome ~ baseline + strata + covariates + arm * visit``)."""
    import peerstats

    ts = trial.spec
    m = spec.model
    visits = [str(v) for v in ts.visits]
    bcol = f"{outcome}_baseline"
    notes: list[str] = []
    a = trial.assessments
    post = a[a["visit"].astype(str) != visits[0]].copy()
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=visits[1:])
    post["arm"] = pd.Categorical(
        post["arm"].astype(str), categories=[str(x) for x in ts.arms.levels]
    )
    post = post[post[outcome].notna()]
    miss = post[bcol].isna()
    if miss.any():
        msg = (
            f"{int(miss.sum())} post-baseline observation(s) of "
            f"{post.loc[miss, 'subject'].nunique()} participant(s) without a baseline "
            f"{outcome!r} were excluded (the baseline is a covariate)"
        )
        notes.append(msg)
        post = post[~miss]
    present = [v for v in visits[1:] if (post["visit"] == v).any()]
    post["visit"] = pd.Categorical(post["visit"].astype(str), categories=present)
    if m.covariates:
        cov_frame = trial.participants[["subject", *m.covariates]]
        post = post.merge(cov_frame, on="subject", how="left", validate="many_to_one")
    strata = [s for s in ts.strata if s in post.columns]
    for s in strata:
        post[s] = post[s].astype(str)
    strata = [s for s in strata if post[s].nunique() > 1]
    many = len(present) > 1
    fixed = f"{outcome} ~ " + " + ".join(
        [bcol, *strata, *m.covariates, "arm * visit" if many else "arm"]
    )
    reference = {"arm": str(ts.arms.reference or ts.arms.levels[0])}
    if m.type == "mmrm":
        cov = m.covariance or "us"
        fit = peerstats.mmrm(
            fixed,
            post,
            subject="subject",
            visit="visit",
            covariance=cov,
            df=m.df,
            reference=reference,
            vcov=m.vcov,
        )
        return FittedOutcome(
            outcome, "mmrm", fixed, fit, f"{cov} across visits", notes=tuple(notes)
        )
    # lmm
    delivered = [str(x) for x in ts.arms.group_delivered]
    post["delivered"] = post["arm"].astype(str).isin(delivered).astype(float)
    if "group" in post.columns or delivered:
        grp = (
            post["group"].astype(object)
            if "group" in post.columns
            else pd.Series(None, index=post.index, dtype=object)
        )
        grp = grp.where(post["delivered"] > 0, None)
        lone = (post["delivered"] > 0) & grp.isna()
        if lone.any():
            notes.append(
                f"{post.loc[lone, 'subject'].nunique()} participant(s) of a group-delivered arm "
                "without a recorded group were treated as groups of one"
            )
            grp = grp.where(~lone, "_single:" + post["subject"].astype(str))
        post["group"] = grp
    formula = f"{fixed} + {m.random}"
    residual = m.covariance or "iid"
    fit = peerstats.lmm(
        formula,
        post,
        residual=residual,
        residual_by=m.residual_by,
        subject="subject",
        visit="visit",
        df=m.df,
        reference=reference,
        vcov=m.vcov,
    )
    icc_s = getattr(fit, "icc", None)
    icc = float(icc_s.get("group")) if icc_s is not None and "group" in icc_s else None
    cov = f"residual {residual}" + (f" by {m.residual_by}" if m.residual_by else "")
    return FittedOutcome(outcome, "lmm", formula, fit, cov, notes=tuple(notes), icc=icc)


def _fit(trial: Any, outcome: str, spec: AnalysisSpec) -> FittedOutcome:
    fitted = (
        _fit_auto(trial, outcome, spec)
        if spec.model.type == "auto"
        else _fit_explicit(trial, outcome, spec)
    )
    if not getattr(fitted.fit, "converged", True):
        raise ConvergenceError(
            f"the model of {outcome!r} did not converge ({fitted.model}: {fitted.formula}); "
            "the analysis plan's model cannot be reported as fitted"
        )
    return fitted


def _model_record(f: FittedOutcome, spec: AnalysisSpec) -> dict[str, Any]:
    fit = f.fit
    coef = coefficients(fit, spec.model.level)
    rec: dict[str, Any] = {
        "model": f.model,
        "formula": f.formula,
        "covariance": f.covariance,
        "method": str(getattr(fit, "method", "reml")),
        "df_method": str(getattr(fit, "df_method", spec.model.df)),
        "converged": bool(getattr(fit, "converged", True)),
        "n_obs": int(fit.n_obs),
        "n_subjects": int(getattr(fit, "n_subjects", 0)),
        "loglik": float(fit.loglik),
        "aic": float(fit.aic),
        "bic": float(fit.bic),
        "coefficients": frame_keyed(coef, ["term"]),
        "covariance_parameters": frame_keyed(fit.cov_parameters, ["parameter", "group"]),
    }
    if f.icc is not None:
        rec["icc"] = f.icc
    if f.design_effect is not None:
        rec["design_effect"] = f.design_effect
        rec["n_groups"] = f.n_groups
        rec["mean_group_size"] = f.mean_group_size
    rec["notes"] = list(f.notes)
    return rec


# ----------------------------------------------------------------------------- text


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


# ----------------------------------------------------------------------------- figures


# ----------------------------------------------------------------------------- main
def run_analysis(
    spec: str | Path | dict | AnalysisSpec,
    *,
    progress: Progress | None = None,
    blinded: bool = False,
) -> AnalysisRun:
    """Run an analysis spec in memory.

    Parameters
    ----------
    spec : path, dict or AnalysisSpec
        The analysis spec (see :func:`peerstats.pipeline.read_analysis_spec`).
    progress : Progress, optional
        Where step lines go (default: none).

    Returns
    -------
    AnalysisRun

    Raises
    ------
    SpecError
        The analysis or trial spec is malformed, or they do not fit each other.
    DataValidationError
        The trial data failed validation (``.failures`` lists every problem).
    ModelSpecificationError, ConvergenceError, ReconciliationError
        A model could not be fitted, did not converge, or disagrees with the CONSORT flow.
    """
    import peerstats
    from peerstats.describe.labels import relabel
    from peerstats.figures.consort import consort

    progress = progress or Progress(enabled=False)
    started = _now()
    spec = read_analysis_spec(spec)
    with progress.step(f"loading and validating the trial ({spec.trial_path.name})"):
        trial = peerstats.load_trial(spec.trial_path)
    spec.check_against(trial.spec)
    if blinded:  # issue 12: arms coded A/B, between-arm comparisons left out (pipeline/_blind)
        from peerstats.pipeline._blind import blind_spec, blind_trial

        trial, _key = blind_trial(trial, spec.seed)
        spec = blind_spec(spec)
    from peerstats.pipeline import sensitivity as _sensitivity  # issue 9: estimand section

    _sensitivity.check_data(spec, trial)  # before any fitting
    run = AnalysisRun(spec=spec, trial=trial)
    run.warnings.extend(f"data: {w}" for w in getattr(trial, "warnings", []))
    ts = trial.spec
    single = ts.design == "single-arm" or len(ts.arms.levels) == 1
    design = "single-arm" if single else str(ts.design)

    files = _input_files(spec, ts)
    run.manifest = {
        "analysis": spec.name,
        "inputs": {k: {"path": str(p), "sha256": _sha256(p)} for k, p in files.items()},
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

    part = trial.participants
    rand = part[part["randomised"].astype(bool)] if "randomised" in part.columns else part
    arms = [str(a) for a in ts.arms.levels]
    res: dict[str, Any] = {
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
    run.results = res
    if blinded:
        from peerstats.pipeline._blind import run_blinded

        return run_blinded(run, progress)

    # ---- models ---------------------------------------------------------------------------
    for o in spec.outcomes:
        with progress.step(f"fitting the model of {o}"), _collect(run.warnings, f"{o}: "):
            run.fits[o] = _fit(trial, o, spec)
    res["models"] = {o: _model_record(f, spec) for o, f in run.fits.items()}
    for o, f in run.fits.items():
        for n in f.notes:
            msg = f"{o}: {n}"
            if msg not in run.warnings:
                run.warnings.append(msg)

    # ---- effects --------------------------------------------------------------------------
    labels = {o: outcome_label(trial, spec, o) for o in spec.outcomes}
    lab = display_labels(trial, spec)
    with progress.step("effects and descriptive tables"), _collect(run.warnings):
        if single:
            rows = []
            for o, f in run.fits.items():
                ct = f.contrasts.copy()
                ct.insert(0, "outcome", o)
                rows.append(ct)
            effects = pd.concat(rows, ignore_index=True)
            effects["visit"] = effects["visit"].astype(str)
            keyed_cols = ["outcome", "visit", "contrast"]
            effects_display = change_table(effects, lab, spec.model.level)
        else:
            otab = peerstats.outcome_table(
                {o: f.fit for o, f in run.fits.items()},
                trial,
                primary=spec.primary_outcome,
                adjust=spec.multiplicity,
                level=spec.model.level,
                labels=labels,
                visit_labels=dict(lab.visits),
                arm_labels=dict(lab.arms),
                directions=directions(trial),
            )
            effects = otab.data.copy()
            effects["visit"] = effects["visit"].astype(str)
            keyed_cols = ["outcome", "visit", "contrast"]
            effects_display = otab
        res["effects"] = frame_keyed(effects, keyed_cols)
        prim = effects[
            (effects["outcome"] == spec.primary_outcome) & (effects["visit"] == spec.primary_visit)
        ]
        if prim.empty:
            raise ModelSpecificationError(
                f"the model of {spec.primary_outcome!r} has no estimate at the primary visit "
                f"{spec.primary_visit!r} (no observations there?)"
            )
        if "cohens_d" in prim.columns:
            prim = prim.rename(columns={"cohens_d": "d"})
        res["primary"] = {
            "outcome": spec.primary_outcome,
            "visit": spec.primary_visit,
            "level": spec.model.level,
            "contrasts": {
                str(r["contrast"]): {
                    k: plain(r[k])
                    for k in (
                        "estimate",
                        "std_error",
                        "df",
                        "statistic",
                        "p_value",
                        "ci_lower",
                        "ci_upper",
                        "d",
                        "d_ci_lower",
                        "d_ci_upper",
                    )
                    if k in r
                }
                for _, r in prim.iterrows()
            },
        }
        if spec.wants_table("outcomes"):
            run.tables["outcomes"] = effects
            if effects_display is not None:
                run.display_tables["outcomes"] = effects_display
                run.html_tables["outcomes"] = effects_display.render("html")
        if spec.wants_table("model_coefficients"):
            coefs = []
            for o, f in run.fits.items():
                c = coefficients(f.fit, spec.model.level)
                c.insert(0, "outcome", o)
                coefs.append(c)
            run.tables["model_coefficients"] = pd.concat(coefs, ignore_index=True)

        # CONSORT, reconciled with the primary model
        flow = None
        if spec.wants_table("consort") or spec.wants_figure("consort"):
            flow = consort(trial, run.fits[spec.primary_outcome].fit, outcome=spec.primary_outcome)
            res["consort"] = frame_keyed(flow.counts, ["stage", "box", "arm", "visit", "reason"])
            run.tables["consort"] = flow.counts
            run.display_tables["consort"] = relabel(flow.to_table(), lab)
        if spec.wants_table("table_one"):
            t1 = peerstats.table_one(
                trial,
                by="arm",
                overall=not single,
                smd=not single,
                labels={
                    **dict(lab.covariates),
                    **{f"{o} (baseline)": f"{lab.outcome(o)} (baseline)" for o in lab.outcomes},
                },
                level_labels=lab.levels,
                arm_labels=dict(lab.arms),
                **spec.table_one_options(),  # issue 21: digits, statistic, missing, suppression
            )
            res["table_one"] = frame_keyed(t1.data, ["variable", "level", "arm", "statistic"])
            run.tables["table_one"] = t1.data
            run.display_tables["table_one"] = t1
            run.html_tables["table_one"] = t1.render("html")
        if spec.responders and spec.wants_table("responders"):
            res["responders"] = {}
            for r in spec.responders:
                rt = peerstats.responder_analysis(
                    trial,
                    r.outcome,
                    visit=r.visit,
                    reliability=r.reliability,
                    cutoff=r.cutoff,
                    alpha=1 - spec.model.level,
                )
                key = f"{r.outcome}|{r.visit or ''}"
                entry = {"rates": frame_keyed(rt.data, ["outcome", "visit", "arm", "category"])}
                comp = getattr(rt, "comparison", None)
                if comp is not None and len(comp):
                    entry["comparison"] = frame_keyed(comp, ["outcome", "visit", "arm", "category"])
                    run.tables[f"responders_comparison_{_responder_name(r)}"] = comp
                params = getattr(rt, "parameters", None)
                if params is not None:
                    entry["parameters"] = plain(params)
                res["responders"][key] = entry
                run.tables[f"responders_{_responder_name(r)}"] = rt.data
                rt = relabel(rt, lab)
                run.display_tables[f"responders_{_responder_name(r)}"] = rt
                run.html_tables[f"responders_{_responder_name(r)}"] = rt.render("html")
        want_feas = spec.wants_table("feasibility") and (single or spec.tables is not None)
        if want_feas:
            ft = peerstats.feasibility(
                trial,
                outcome=spec.primary_outcome,
                min_sessions=spec.min_sessions,
                alpha=1 - spec.model.level,
            )
            res["feasibility"] = frame_keyed(ft.data, ["measure", "arm", "visit"])
            att = getattr(ft, "attendance", None)
            if att is not None:
                res["attendance"] = plain(att)
            run.tables["feasibility"] = ft.data
            ft = relabel(ft, lab)
            run.display_tables["feasibility"] = ft
            run.html_tables["feasibility"] = ft.render("html")
        if getattr(ts, "adverse_events", None) is not None and spec.wants_table("harms"):
            from peerstats.pipeline._display import read_adverse_events

            ht = read_adverse_events(trial, lab)
            res["harms"] = frame_keyed(ht.data, ["category", "arm"])
            run.tables["harms"] = ht.data
            run.display_tables["harms"] = ht
            run.html_tables["harms"] = ht.render("html")
        if not single and spec.wants_table("ls_means"):
            from peerstats.pipeline._display import ls_means_table

            lt = ls_means_table(run.fits, lab, spec.model.level)
            res["ls_means"] = frame_keyed(lt.data, ["outcome", "visit", "arm"])
            run.tables["ls_means"] = lt.data
            run.display_tables["ls_means"] = lt
            run.html_tables["ls_means"] = lt.render("html")
        want_wgc = spec.wants_table("within_group_change") and (single or spec.tables is not None)
        if want_wgc:
            frames, htmls = [], []
            for o in spec.outcomes:
                wt = peerstats.within_group_change(trial, o, alpha=1 - spec.model.level)
                frames.append(wt.data)
                wt = relabel(wt, lab)
                run.display_tables[f"within_group_change_{o}"] = wt
                htmls.append(wt.render("html"))
            wg = pd.concat(frames, ignore_index=True)
            res["within_group_change"] = frame_keyed(wg, ["outcome", "arm", "visit"])
            run.tables["within_group_change"] = wg
            run.html_tables["within_group_change"] = "\n".join(htmls)

    with progress.step("drawing the figures"), _collect(run.warnings):
        _figures(run, flow, effects)

    _sensitivity.run_sensitivity(run, progress)  # estimand and missing data (issue 9)
    res["warnings"] = list(run.warnings)
    from peerstats.pipeline.report import render_report

    with progress.step("writing the report"):
        run.report_html = render_report(run)
    return run


def _now() -> _dt.datetime:
    """The time to record: ``SOURCE_DATE_EPOCH`` when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
        except (ValueError, OverflowError, OSError):
            pass
    return _dt.datetime.now(_dt.UTC)


def _write_tree(root: Path, run: AnalysisRun) -> None:
    from peerstats._safe import write_csv

    (root / "tables").mkdir()
    (root / "figures").mkdir()
    for name, df in run.tables.items():  # text cells that a spreadsheet would run are quoted
        write_csv(df, root / "tables" / f"{name}.csv")
    if run.display_tables:
        (root / "tables" / "display").mkdir()
    for name, table in run.display_tables.items():  # as the table reads: CSV and Word
        table.to_csv(root / "tables" / "display" / f"{name}.csv")
        table.to_docx(root / "tables" / f"{name}.docx", page=run.spec.paper)
    from peerstats.describe.render import tidy_display
    from peerstats.describe.word import tables_to_docx

    words = dict(run.display_tables)  # issue 21: a .docx for every table, and all in one
    for name, df in run.tables.items():
        if name not in words and isinstance(df, pd.DataFrame) and len(df.columns):
            words[name] = tidy_display(df, name)
            words[name].to_docx(root / "tables" / f"{name}.docx", page=run.spec.paper)
    if words:
        order = ["consort", "table_one", "outcomes", "ls_means"]
        names = sorted(words, key=lambda n: order.index(n) if n in order else 99)
        combined = [words[n] for n in names]
        tables_to_docx(combined, root / "tables" / "tables.docx", page=run.spec.paper)
    for name, svg in run.figures.items():
        (root / "figures" / f"{name}.svg").write_text(svg, encoding="utf-8")
    (root / "results.json").write_text(dumps(run.results), encoding="utf-8")
    (root / "report.html").write_text(run.report_html, encoding="utf-8")
    outputs = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            outputs[p.relative_to(root).as_posix()] = _sha256(p)
    manifest = dict(run.manifest)
    manifest["outputs"] = outputs
    finished = _now()
    manifest["finished"] = finished.isoformat(timespec="seconds")
    started = _dt.datetime.fromisoformat(manifest["started"])
    manifest["duration_seconds"] = round((finished - started).total_seconds())
    (root / "manifest.json").write_text(dumps(manifest), encoding="utf-8")


def check_output_dir(out: str | Path, *, force: bool = False) -> Path:
    """Check that ``out`` may be written; returns it resolved.

    Raises
    ------
    SpecError
        ``out`` exists and ``force`` is false, or it is a file.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise SpecError(f"{out} exists and is not a folder")
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise SpecError(f"{out} is the current folder or contains it; choose a results folder")
    if out.exists() and not force:
        raise SpecError(f"{out} exists; pass --force (force=True) to replace it")
    if out.exists() and any(out.iterdir()) and not _is_results_folder(out):
        # --force replaces earlier results, never a folder of other files (inputs, a project)
        raise SpecError(
            f"{out} is not an earlier peerstats result folder (no peerstats manifest.json); "
            "--force only replaces results. Choose another --out or empty it yourself."
        )
    return out


def _is_results_folder(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("results_format", "")).startswith(
        "peerstats-results/"
    )


def _inputs_inside(run: AnalysisRun, out: Path) -> list[str]:
    """Input files of the run that lie inside ``out`` (replacing it would delete them)."""
    inside = []
    for item in run.manifest.get("inputs", {}).values():
        path = Path(item.get("path", "")).resolve() if isinstance(item, dict) else None
        if path is not None and (path == out or out in path.parents):
            inside.append(str(path))
    return inside


def write_results(
    run: AnalysisRun,
    out: str | Path,
    *,
    force: bool = False,
    _writer: Callable[[Path, AnalysisRun], None] | None = None,
) -> Path:
    """Write a run's folder atomically.

    Everything is written to a temporary folder next to ``out`` that is renamed to ``out`` at
    the end; a failure leaves ``out`` as it was (absent, or the previous results). The rename
    never replaces a folder that appeared while the run was writing (``RENAME_NOREPLACE``
    where the system has it); with ``force`` only earlier peerstats results are replaced. A
    lock per output folder (``.<out>.lock`` beside it) keeps two runs from writing the same
    folder; temporary folders left by runs that died are removed (see
    :func:`clean_stale_folders`).

    Parameters
    ----------
    run : AnalysisRun
    out : path
    force : bool
        Replace an existing ``out`` (earlier results only).

    Returns
    -------
    Path
        ``out`` (resolved).

    Raises
    ------
    SpecError
        ``out`` exists (without ``force``), is not a results folder, appeared while writing,
        or holds input files; :class:`OutputBusyError` when another run writes it.
    """
    out = check_output_dir(out, force=force)
    inside = _inputs_inside(run, out)
    if inside:
        raise SpecError(f"--out {out} contains input files of the analysis: {inside[:5]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        clean_stale_folders(out)
        out = check_output_dir(out, force=force)  # again, under the lock
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
        try:
            (_writer or _write_tree)(tmp, run)
            os.chmod(tmp, 0o755)
            _move_into_place(tmp, out, force=force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _move_into_place(tmp: Path, out: Path, *, force: bool) -> None:
    """Rename the written folder ``tmp`` to ``out`` without ever replacing a folder that is
    not earlier peerstats results (checked at the last moment, not only before the run)."""
    appeared = (
        f"{out} appeared while this run was writing; it was left as it is and nothing was "
        "written. Choose another --out"
    )
    if out.exists() or out.is_symlink():
        if not force:
            raise SpecError(appeared + " (or pass --force to replace earlier results)")
        if (
            not out.is_dir()
            or out.is_symlink()
            or (any(out.iterdir()) and not _is_results_folder(out))
        ):
            raise SpecError(
                f"{out} is not an earlier peerstats result folder; --force only replaces "
                "results. Choose another --out or empty it yourself."
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        old.rmdir()
        _rename_noreplace(out, old)
        try:
            _rename_noreplace(tmp, out)
        except FileExistsError:
            raise SpecError(appeared + f"; the earlier results are kept in {old}") from None
        except BaseException:
            _rename_noreplace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        _rename_noreplace(tmp, out)
    except FileExistsError:
        raise SpecError(appeared) from None


def _renameat2(src: Path, dst: Path) -> bool:
    """``renameat2(..., RENAME_NOREPLACE)`` on Linux; False when unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_noreplace = -100, 1
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # the file system cannot: fall back
    if err in (errno.EEXIST, errno.ENOTEMPTY):
        raise FileExistsError(err, os.strerror(err), str(dst))
    raise OSError(err, os.strerror(err), str(src))


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError when ``dst`` exists (never replaced)."""
    if _renameat2(src, dst):
        return
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} exists")
    try:
        # POSIX rename may still replace an *empty* folder that appeared in the last
        # microseconds (nothing is lost); a non-empty one makes it fail
        os.rename(src, dst)
    except OSError as exc:
        if dst.exists():
            raise FileExistsError(f"{dst} exists") from exc
        raise


class OutputBusyError(SpecError):
    """Another peerstats run is writing the same output folder."""


_HELD: dict[Path, int] = {}  # output folder -> thread holding its lock in this process
#: temporary folders older than this are removed even when their pid looks alive (reused pid)
STALE_AGE_SECONDS = 24 * 3600


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no safe check: age alone decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def output_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of output folder ``out`` (``.<name>.lock`` beside it; re-entrant).

    Raises
    ------
    OutputBusyError
        Another process holds it.
    """
    import threading

    out = Path(out).resolve()
    me = threading.get_ident()
    if _HELD.get(out) == me:
        yield
        return
    lock = out.parent / f".{out.name}.lock"
    fd = _acquire(lock, out)
    _HELD[out] = me
    try:
        yield
    finally:
        _HELD.pop(out, None)
        try:
            lock.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)


def _busy(lock: Path, out: Path) -> OutputBusyError:
    try:
        holder = lock.read_text(encoding="ascii").strip() or "unknown"
    except (OSError, UnicodeError):
        holder = "unknown"
    return OutputBusyError(
        f"{out} is being written by another peerstats run (pid {holder}); wait until it has "
        f"finished or choose another --out (a lock file {lock.name} marks it)"
    )


def _acquire(lock: Path, out: Path) -> int:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: an exclusive create instead
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                age = time.time() - lock.stat().st_mtime
                if age > STALE_AGE_SECONDS:
                    lock.unlink(missing_ok=True)
                    continue
                raise _busy(lock, out) from None
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        raise _busy(lock, out) from None
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(lock, out) from None
        try:  # the lock file we hold must still be the one at the path (a finishing run
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino  # unlinks it)
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def clean_stale_folders(out: str | Path) -> list[Path]:
    """Remove ``.<out>.tmp-<pid>-*`` and ``.<out>.old-<pid>-*`` folders of runs that died
    (their process no longer exists, or they are older than a day); returns those removed.
    Call it holding :func:`output_lock` of ``out``."""
    import re

    out = Path(out).resolve()
    if not out.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(?:(\d+)-)?")
    removed = []
    now = time.time()
    for p in out.parent.iterdir():
        m = pattern.match(p.name)
        if not m or not p.is_dir() or p.is_symlink():
            continue
        try:
            age = now - p.stat().st_mtime
        except OSError:
            continue
        pid = int(m.group(2)) if m.group(2) else None
        if pid == os.getpid():
            continue
        dead = (pid is not None and not _pid_alive(pid)) or (pid is None and age > 3600)
        if dead or age > STALE_AGE_SECONDS:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def run(
    spec: str | Path | dict | AnalysisSpec,
    out: str | Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    blinded: bool = False,
) -> Path:
    """Run an analysis spec and write its result folder (see the module docstring);
    ``blinded=True`` writes the data-monitoring committee's open report (arms coded A/B,
    no between-arm comparisons; see :mod:`peerstats.pipeline._blind`).

    Returns
    -------
    Path
        The folder written; ``<out>/report.html`` is the report.
    """
    resolved = check_output_dir(out, force=force)  # fail before the work, not after
    # hold the folder's lock for the whole run: a second run on the same --out is told at
    # once that the folder is busy, rather than racing this one at the end
    lock = output_lock(resolved) if resolved.parent.is_dir() else contextlib.nullcontext()
    with lock:
        result = run_analysis(spec, progress=progress, blinded=blinded)
        progress = progress or Progress(enabled=False)
        with progress.step(f"writing {out}"):
            return write_results(result, out, force=force)
