"""The four synthetic example trials, as short named steps over their design descriptions.

Each trial's numbers (arms, sites, covariate distributions, outcome model, dropout, spec and
README text) are data in ``data/_designs/<name>.yaml``; the steps here draw from one random
generator in a fixed order, so the bundled files are reproduced byte for byte (a test
regenerates them). The data are SYNTHETIC.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from peerstats.datasets._build import (
    _allocate,
    _assessment_frame,
    _corr,
    _correlated,
    _covariates,
    _dropout,
    _expand,
    _item_blocks,
    _mvn,
    _pick,
    _score,
    _screened,
    _secondary,
    _sessions,
    _to_int64,
    _write_trial,
    load_design,
)
from peerstats.datasets._registry import (
    _admission_times,
    _adverse_events,
    _economic_columns,
    _economic_data,
    _service_use,
)


# --------------------------------------------------------------------------------------------
# 1. peer_recovery: the Danish PEER design
# --------------------------------------------------------------------------------------------
def _delivery_groups(rand: pd.DataFrame, sites: list[str], size: int):
    """Peer-arm delivery groups of at most ``size`` per site, each run by two of the site's
    ``g + 1`` peers; returns the group and peer columns and the numbers of groups and peers."""
    n = len(rand)
    group = np.full(n, None, dtype=object)
    peer = np.full(n, None, dtype=object)
    n_groups = n_peers = 0
    for site in sites:
        idx = np.flatnonzero((rand["site"] == site).to_numpy() & (rand["arm"] == "peer").to_numpy())
        g = math.ceil(len(idx) / size)
        pool = [f"P{n_peers + j + 1:02d}" for j in range(g + 1)]  # g + 1 peers run g groups
        n_peers += len(pool)
        sizes = np.full(g, len(idx) // g)
        sizes[: len(idx) % g] += 1
        start = 0
        for j in range(g):
            n_groups += 1
            members = idx[start : start + sizes[j]]
            start += sizes[j]
            group[members] = f"G{n_groups:02d}"
            peer[members] = f"{pool[j]};{pool[j + 1]}"
    return group, peer, n_groups, n_peers


def _group_delivery(rng: np.random.Generator, d: dict[str, Any], is_peer: np.ndarray):
    """Who started the group course, who quit it (and why) and session attendance."""
    n, k = len(is_peer), d["sessions"]
    received = np.ones(n, dtype=int)
    not_received_reason = np.full(n, None, dtype=object)
    no_start = is_peer & (rng.random(n) < d["p_no_start"])
    received[no_start] = 0
    reasons = d["no_start_reasons"]
    not_received_reason[no_start] = _pick(
        rng, list(reasons), list(reasons.values()), int(no_start.sum())
    )
    discontinued_reason = np.full(n, None, dtype=object)
    attend = np.zeros((n, k), dtype=int)
    propensity = rng.beta(*d["attendance_beta"], n)
    stop = np.full(n, k)
    quits = is_peer & (received == 1) & (rng.random(n) < d["p_quit"])
    stop[quits] = rng.integers(*d["quit_before"], size=int(quits.sum()))
    for i in np.flatnonzero(is_peer & (received == 1)):
        a = (rng.random(k) < propensity[i]).astype(int)
        a[0] = 1  # received = attended the first session
        a[stop[i] :] = 0
        attend[i] = a
    disc = quits.astype(int)
    reasons = d["quit_reasons"]
    discontinued_reason[quits] = _pick(rng, list(reasons), list(reasons.values()), int(quits.sum()))
    return received, not_received_reason, disc, discontinued_reason, attend


def _qpr(rng, p: dict[str, Any], is_peer, dose, group) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores and the keyed QPR-15 total: visit means, arm SDs, dose-scaled effect and a
    delivery-group random intercept after baseline."""
    corr = _corr(p["rho"])
    z = _mvn(rng, len(is_peer), corr)
    sd_peer = np.array(p["sd_peer"])
    sd = np.where(is_peer[:, None], sd_peer, np.array(p["sd_usual"]))
    resid_var = sd_peer[1] ** 2 * (1 - corr[0, 1] ** 2)
    sd_group = math.sqrt(p["icc"] / (1 - p["icc"]) * resid_var)
    gid = sorted({g for g in group if g is not None})
    g_eff = dict(zip(gid, rng.normal(0, sd_group, len(gid)), strict=True))
    ge = np.array([g_eff[g] if g is not None else 0.0 for g in group])
    post = np.array([0.0, 1.0, 1.0])
    qpr = np.array(p["mean"]) + sd * z + dose[:, None] * np.array(p["effect"]) + ge[:, None] * post
    return z, np.clip(qpr, p["min"], p["max"])


def _screening_order(
    rng: np.random.Generator, participants: pd.DataFrame, prefix: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Interleave randomised and excluded people in screening order, then renumber the ids."""
    order = rng.permutation(len(participants))
    participants = participants.iloc[order].reset_index(drop=True)
    new_id = {old: f"{prefix}{i + 1:03d}" for i, old in enumerate(participants["id"])}
    participants["id"] = participants["id"].map(new_id)
    return participants, new_id


def _sort_long(assessments: pd.DataFrame, visits: list[str]) -> pd.DataFrame:
    assessments["_o"] = assessments["visit"].map({v: i for i, v in enumerate(visits)})
    return (
        assessments.sort_values(["id", "_o"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def _pr_tables(rng, seed, participants, subjects, visits, present, scores, attend, is_peer):
    """Items, the sorted long tables, then the registry, economic and adverse-event columns
    (each from its own stream)."""
    blocks = _item_blocks(rng, scores)
    assessments = _assessment_frame(subjects, visits, present, blocks)
    sessions = _sessions(subjects, attend, is_peer)
    sessions = sessions.sort_values(["id", "session"], kind="stable").reset_index(drop=True)
    assessments = _sort_long(assessments, visits)
    participants = participants.sort_values("id", kind="stable").reset_index(drop=True)
    participants = _admission_times(_service_use(participants, seed), seed)
    return {
        "participants": participants,
        "assessments": _economic_data(assessments, participants, seed),
        "sessions": sessions,
        "adverse_events": _adverse_events(participants, seed),
    }


def _peer_recovery(out: Path, seed: int) -> None:
    d, rng = load_design("peer_recovery", seed)
    visits, sites = d["visits"], d["sites"]
    rand = _allocate(rng, sites, d["allocation"])
    n = len(rand)
    excl_reasons = _expand(d["excluded"])
    excl_site = _pick(rng, sites, d["excluded_site_weights"], len(excl_reasons))
    group, peer, n_groups, n_peers = _delivery_groups(rand, sites, d["group_size"])
    is_peer = (rand["arm"] == "peer").to_numpy()
    cov = _covariates(rng, d["covariates"], n)
    received, not_received, disc, disc_reason, attend = _group_delivery(rng, d["delivery"], is_peer)
    discontinued = pd.array(np.where(is_peer, disc, 0), dtype="Int64")
    discontinued[~is_peer] = pd.NA
    attended = attend.sum(axis=1)
    dose = np.where(is_peer, 0.5 + 0.5 * attended / attended[is_peer].mean(), 0.0)
    z, qpr = _qpr(rng, d["primary"], is_peer, dose, group)
    secondary = _secondary(rng, z, d["secondary"], dose)
    extra = np.where(is_peer, 1.5 * (received == 0) + 0.8 * disc, 0.0)
    present, withdrawn, last = _dropout(rng, qpr, d["dropout"], extra_risk=extra, visits=visits)
    participants = pd.DataFrame(
        {
            "id": [f"PR{i + 1:03d}" for i in range(n)],
            "site": rand["site"],
            "randomised": 1,
            "eligible": 1,
            "exclusion_reason": None,
            "arm": rand["arm"],
            "group": group,
            "peer": peer,
            **cov,
            "received": received,
            "not_received_reason": not_received,
            "discontinued": discontinued,
            "discontinued_reason": disc_reason,
            "withdrawn_reason": withdrawn,
            "last_visit": last,
        }
    )
    subjects = list(participants["id"])
    screened = _screened("PR", n, excl_reasons, site=excl_site)
    participants = pd.concat([participants, screened], ignore_index=True)
    participants, new_id = _screening_order(rng, participants, "PR")
    _to_int64(participants, ["randomised", "eligible", "age", "living_alone", "received",
                             "discontinued"])  # fmt: skip
    subjects = [new_id[s] for s in subjects]
    scores = [("qpr", qpr), *secondary.items()]
    tables = _pr_tables(rng, seed, participants, subjects, visits, present, scores, attend, is_peer)
    facts = {"n_groups": n_groups, "n_peers": n_peers}
    _write_trial(out, seed, d, tables, facts=facts, extra_outcomes=_economic_columns())


# --------------------------------------------------------------------------------------------
# 2. icbt_peer: iCBT for anxiety with vs without peer support
# --------------------------------------------------------------------------------------------
def _module_adherence(rng: np.random.Generator, d: dict[str, Any], is_peer: np.ndarray):
    """Modules completed in order (0/1 per module): the first with ``p_first``, each next one,
    while still going, with ``p ** power`` (``p`` ~ beta, higher with peer support)."""
    n, k = len(is_peer), d["modules"]
    p_mod = np.where(is_peer, rng.beta(*d["beta_peer"], n), rng.beta(*d["beta_icbt"], n))
    modules = np.zeros((n, k), dtype=int)
    for i in range(n):
        go = True
        for m in range(k):
            go = go and (rng.random() < (d["p_first"] if m == 0 else p_mod[i] ** d["power"]))
            modules[i, m] = int(go)
    return modules


def _icbt_peer(out: Path, seed: int) -> None:
    d, rng = load_design("icbt_peer", seed)
    visits, adh = d["visits"], d["adherence"]
    arms = rng.permutation(np.asarray(_expand(d["arms"]), dtype=object))
    n = len(arms)
    is_peer = arms == "icbt_peer"
    peer = np.where(is_peer, _pick(rng, d["peers"], [1] * len(d["peers"]), n), None)
    cov = _covariates(rng, d["covariates"], n)
    modules = _module_adherence(rng, adh, is_peer)
    received = (modules[:, 0] == 1).astype(int)
    discontinued = ((received == 1) & (modules.sum(axis=1) < adh["min_modules"])).astype(int)
    reasons = adh["discontinued_reasons"]
    discontinued_reason = np.where(
        discontinued == 1, _pick(rng, list(reasons), list(reasons.values()), n), None
    )
    dose = is_peer.astype(float)
    z = _mvn(rng, n, _corr(d["primary"]["rho"]))
    gad = _score(z, d["primary"], dose)
    secondary = _secondary(rng, z, d["secondary"], dose)
    extra = 1.0 * (discontinued + (1 - received))
    present, withdrawn, last = _dropout(rng, gad, d["dropout"], extra_risk=extra, visits=visits)
    subjects = [f"IP{i + 1:03d}" for i in range(n)]
    participants = pd.DataFrame(
        {
            "id": subjects,
            "randomised": 1,
            "eligible": 1,
            "exclusion_reason": None,
            "arm": arms,
            "peer": peer,
            **cov,
            "received": received,
            "not_received_reason": np.where(received == 0, "did not log in to the programme", None),
            "discontinued": discontinued,
            "discontinued_reason": discontinued_reason,
            "withdrawn_reason": withdrawn,
            "last_visit": last,
        }
    )
    screened = _screened("IP", n, _expand(d["excluded"]))
    participants = pd.concat([participants, screened], ignore_index=True)
    _to_int64(participants, ["randomised", "eligible", "age", "received", "discontinued"])
    blocks = _item_blocks(rng, [("gad", gad), *secondary.items()])
    tables = {
        "participants": participants,
        "assessments": _assessment_frame(subjects, visits, present, blocks),
        "sessions": _sessions(subjects, modules, np.ones(n, dtype=bool)),
    }
    _write_trial(out, seed, d, tables)


# --------------------------------------------------------------------------------------------
# 3. icbt_feasibility: single-arm feasibility study (Nissling et al. 2020 design)
# --------------------------------------------------------------------------------------------
def _phq_risk_item(rng: np.random.Generator, items: pd.DataFrame, keep: float) -> pd.DataFrame:
    """PHQ-9 item 9 (thoughts of self-harm) is rarely endorsed: keep it for a fraction ``keep``."""
    out = items.copy()
    kept = rng.random(len(out)) < keep
    out["phq_9"] = np.where(kept, np.minimum(out["phq_9"], 1), 0)
    return out


def _feasibility_visits(rng: np.random.Generator, status: list[str]):
    """Visits attended by those with data (one misses post, one is lost before fu3) and the
    withdrawal reason and last visit of everyone."""
    n = len(status)
    has_data = np.array([s == "data" for s in status])
    present = np.zeros((n, 3), dtype=bool)
    present[has_data, :] = True
    lost = rng.choice(np.flatnonzero(has_data), size=2, replace=False)
    present[lost[0], 1] = False  # missed post, returned at fu3
    present[lost[1], 2] = False  # withdrew after post
    withdrawn_reason = np.full(n, None, dtype=object)
    last_visit = np.full(n, None, dtype=object)
    withdrawn_reason[lost[1]] = "could not be contacted"
    last_visit[lost[1]] = "post"
    for i in range(n):
        if status[i] == "no_data":
            withdrawn_reason[i] = "did not want to answer questionnaires"
        if status[i] == "no_start":
            withdrawn_reason[i] = "withdrew consent"
    return present, withdrawn_reason, last_visit


def _feasibility_participants(rng, d, status, modules, withdrawn_reason, last_visit):
    n = len(status)
    consented = np.array([s != "declined" for s in status])
    started = consented & (modules[:, 0] == 1)
    discontinued = pd.array(
        np.where(started, (modules.sum(axis=1) < d["min_modules"]).astype(int), pd.NA), "Int64"
    )
    a = d["age"]
    age = np.where(consented, np.clip(np.rint(rng.normal(a["mean"], a["sd"], n)), a["min"], a["max"]), np.nan)  # fmt: skip
    peer = _pick(rng, d["peers"], [1] * len(d["peers"]), n)
    gender = _pick(rng, list(d["gender"]), list(d["gender"].values()), n)
    participants = pd.DataFrame(
        {
            "id": [f"F{i + 1:02d}" for i in range(n)],
            "consented": consented.astype(int),
            "randomised": consented.astype(int),
            "exclusion_reason": np.where(consented, None, "declined"),
            "arm": np.where(consented, "icbt_peer", None),
            "peer": np.where(consented, peer, None),
            "age": pd.array(age, dtype="Float64").astype("Int64"),
            "gender": np.where(consented, gender, None),
            "received": pd.array(np.where(consented, started.astype(int), pd.NA), dtype="Int64"),
            "not_received_reason": np.where(
                np.array([s == "no_start" for s in status]), "withdrew before starting", None
            ),
            "discontinued": discontinued,
            "discontinued_reason": np.where(
                discontinued.fillna(0).to_numpy() == 1, "lack of time", None
            ),
            "withdrawn_reason": withdrawn_reason,
            "last_visit": last_visit,
        }
    )
    return _to_int64(participants, ["randomised", "consented"])


def _icbt_feasibility(out: Path, seed: int) -> None:
    d, rng = load_design("icbt_feasibility", seed)
    status = [str(s) for s in rng.permutation(np.asarray(_expand(d["status"]), dtype=object))]
    n = len(status)
    modules = np.zeros((n, d["modules"]), dtype=int)
    for i in range(n):
        if status[i] in ("data", "no_data"):
            k = int(rng.choice(d["modules_done"])) if status[i] == "data" else 1
            modules[i, :k] = 1
    z = _mvn(rng, n, _corr(d["primary"]["rho"]))
    scores = {"gad": _score(z, d["primary"]), **_secondary(rng, z, d["secondary"], None)}
    present, withdrawn_reason, last_visit = _feasibility_visits(rng, status)
    participants = _feasibility_participants(rng, d, status, modules, withdrawn_reason, last_visit)
    subjects = list(participants["id"])
    keep = d["p_phq9_kept"]
    blocks = _item_blocks(
        rng,
        [(key, scores[key]) for key in ("gad", "bai", "phq", "es")],
        {"phq": lambda r, items: _phq_risk_item(r, items, keep)},
        p_one=d["p_missing_item"],
        p_block=0.0,
    )
    consented = participants["consented"].to_numpy() == 1
    enrolled = consented & (modules[:, 0] == 1) | (np.array(status) == "no_start")
    tables = {
        "participants": participants,
        "assessments": _assessment_frame(subjects, d["visits"], present, blocks),
        "sessions": _sessions(subjects, modules, enrolled),
    }
    _write_trial(out, seed, d, tables)


# --------------------------------------------------------------------------------------------
# 4. social_inclusion: UPSIDES-like multicentre RCT
# --------------------------------------------------------------------------------------------
def _site_peers(rng, is_peer, site_idx, n_sites: int, per_site: int) -> np.ndarray:
    """Each peer-arm participant's peer supporter, one of ``per_site`` at their site."""
    peer = np.full(len(is_peer), None, dtype=object)
    for s in range(n_sites):
        idx = np.flatnonzero(is_peer & (site_idx == s))
        peer[idx] = [f"S{s + 1}P{int(j) + 1}" for j in rng.integers(0, per_site, len(idx))]
    return peer


def _uptake(rng: np.random.Generator, d: dict[str, Any], is_peer: np.ndarray):
    """Received (peer arm: took up peer support), discontinued and its reason."""
    n = len(is_peer)
    received = np.where(is_peer, (rng.random(n) > d["p_no_uptake"]).astype(int), 1)
    disc = (received == 1) & (rng.random(n) < d["p_discontinued"])
    discontinued = pd.array(np.where(is_peer, disc.astype(int), pd.NA), dtype="Int64")
    reasons = d["discontinued_reasons"]
    discontinued_reason = np.where(
        discontinued.fillna(0).to_numpy() == 1,
        _pick(rng, list(reasons), list(reasons.values()), n),
        None,
    )
    return received, discontinued, discontinued_reason


def _site_scores(rng, d: dict[str, Any], is_peer, site_idx, n_sites: int):
    """SIS total with a random site mean and a site-varying treatment effect, and the
    Empowerment Scale mean sharing the site mean."""
    p = d["primary"]
    z = _mvn(rng, len(is_peer), _corr(p["rho"]))
    site_mean = rng.normal(0, p["sd_site_mean"], n_sites)[site_idx][:, None]
    site_effect = rng.normal(0, p["sd_site_effect"], n_sites)[site_idx]
    scale = np.where(is_peer, 1.0 + site_effect / 3.0, 0.0)[:, None]
    sis = np.array(p["mean"]) + site_mean + np.array(p["sd"]) * z + scale * np.array(p["effect"])
    e = d["empowerment"]
    ze = _correlated(rng, z, e["rho"])
    es = e["mean"] + site_mean / e["site_scale"] + e["sd"] * ze
    es = es + np.where(is_peer[:, None], e["effect"], 0.0)
    return np.clip(sis, p["min"], p["max"]), np.clip(es, e["min"], e["max"])


def _social_inclusion(out: Path, seed: int) -> None:
    d, rng = load_design("social_inclusion", seed)
    visits, sites = d["visits"], d["sites"]
    rand = _allocate(rng, sites, d["allocation"])
    n = len(rand)
    is_peer = (rand["arm"] == "peer").to_numpy()
    site_idx = rand["site"].map({s: i for i, s in enumerate(sites)}).to_numpy()
    peer = _site_peers(rng, is_peer, site_idx, len(sites), d["peers_per_site"])
    cov = _covariates(rng, d["covariates"], n)
    received, discontinued, discontinued_reason = _uptake(rng, d, is_peer)
    sis, es = _site_scores(rng, d, is_peer, site_idx, len(sites))
    extra = np.where(is_peer, 0.0, d["waitlist_extra_risk"])
    present, withdrawn, last = _dropout(rng, sis, d["dropout"], extra_risk=extra, visits=visits)
    subjects = [f"U{i + 1:03d}" for i in range(n)]
    participants = pd.DataFrame(
        {
            "id": subjects,
            "site": rand["site"],
            "arm": rand["arm"],
            "peer": peer,
            **cov,
            "received": received,
            "not_received_reason": np.where(
                is_peer & (received == 0), "did not take up peer support", None
            ),
            "discontinued": discontinued,
            "discontinued_reason": discontinued_reason,
            "withdrawn_reason": withdrawn,
            "last_visit": last,
        }
    )
    blocks = _item_blocks(rng, [("sis", sis), ("es", es)])
    tables = {
        "participants": participants,
        "assessments": _assessment_frame(subjects, visits, present, blocks),
    }
    _write_trial(out, seed, d, tables)
