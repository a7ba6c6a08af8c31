"""Registry follow-up, economic data and adverse events of the synthetic ``peer_recovery`` trial.

Each is drawn from its own random stream (``[seed, 16]``, ``[seed, 17]``, ``[seed, 18]``,
``seed + 1``) after every other column, so adding one never changed an existing value.
The data are SYNTHETIC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: readmission and bed-days model of the PEER example (issue 16): logit P(readmission within
#: 12 months) = logit(0.36) + site + log(0.62) * peer + u_group (u ~ N(0, 0.45^2), peer arm);
#: after a readmission, bed-days = 1 + Poisson(gamma(1.3, mean / 1.3)) with mean 24 (usual) and
#: 17 (peer) days, times exp(u_group / 2)
_SERVICE_USE = {
    "p_usual": 0.36,
    "odds_ratio": 0.62,
    "sd_group": 0.45,
    "site": (0.0, 0.15, -0.10, 0.05, -0.20),
    "stay_usual": 24.0,
    "stay_peer": 17.0,
    "stay_size": 1.3,
}


#: EQ-5D-5L and service use of peer_recovery (issue 18): level offsets per dimension (a
#: mental-health population: anxiety/depression and usual activities worst), the latent health
#: shift of the peer arm after baseline, and the mean service use per recall period
_ECONOMIC = {
    "eq5d_base": {"mo": 1.3, "sc": 1.1, "ua": 2.2, "pd": 1.9, "ad": 2.6},
    "peer_shift": 0.25,
    "use": {"su_gp": 1.6, "su_outpatient": 2.2, "su_crisis": 0.35, "su_inpatient_days": 0.9},
    "peer_use": {"su_crisis": 0.8, "su_inpatient_days": 0.8},
    "p_skipped": 0.02,
}


def _economic_columns() -> dict[str, dict]:
    """Trial-spec entries of the EQ-5D-5L dimensions and service-use counts (validated ranges)."""
    names = {"mo": "mobility", "sc": "self-care", "ua": "usual activities",
             "pd": "pain/discomfort", "ad": "anxiety/depression"}  # fmt: skip
    out = {f"eq5d_{d}": {"column": f"eq5d_{d}", "min": 1, "max": 5, "higher_is_better": False,
                         "label": f"EQ-5D-5L {w}"} for d, w in names.items()}  # fmt: skip
    use = {"su_gp": "GP visits", "su_outpatient": "mental-health outpatient visits",
           "su_crisis": "crisis contacts", "su_inpatient_days": "psychiatric inpatient days"}  # fmt: skip
    out.update({k: {"column": k, "min": 0, "higher_is_better": False, "label": v}
                for k, v in use.items()})  # fmt: skip
    return out


def _economic_data(assessments: pd.DataFrame, participants: pd.DataFrame, seed: int):
    """EQ-5D-5L at every assessment and service use since the previous one (issue 18).

    Drawn from their own random stream (``[seed, 18]``) after every other column, so each
    existing value stays identical. Health is a latent score correlated with the WSAS items
    (worse functioning, worse EQ-5D levels and more service use), shifted in the peer arm after
    baseline; ~2% of questionnaires are skipped (all five dimensions and the service use
    missing). Service use (GP visits, mental-health outpatient visits, crisis contacts,
    psychiatric inpatient days) is asked at every visit: at baseline for the 3 months before
    randomisation, at post and fu3 for the time since the last visit.
    """
    c = _ECONOMIC
    rng = np.random.default_rng([seed, 18])
    a = assessments
    n = len(a)
    wsas = a[[f"wsas_{i}" for i in range(1, 6)]].mean(axis=1)
    z = ((wsas - wsas.mean()) / wsas.std()).fillna(0.0).to_numpy()
    peer = set(participants.loc[participants["arm"] == "peer", "id"])
    after = (a["visit"] != "baseline").to_numpy() & a["id"].isin(peer).to_numpy()
    health = -0.6 * z + rng.normal(0.0, 0.8, n) + c["peer_shift"] * after
    skipped = rng.random(n) < c["p_skipped"]
    out = a.copy()
    for d, base in c["eq5d_base"].items():
        lv = np.clip(np.rint(base - 0.75 * health + rng.normal(0.0, 0.6, n)), 1, 5)
        out[f"eq5d_{d}"] = pd.array(np.where(skipped, None, lv.astype(int)), "Int64")
    asked = ~skipped
    for item, mean in c["use"].items():
        mu = mean * np.exp(-0.35 * health) * np.where(after, c["peer_use"].get(item, 1.0), 1.0)
        count = rng.poisson(rng.gamma(1.2, mu / 1.2))
        out[item] = pd.array(np.where(asked, count, None), "Int64")
    return out


def _service_use(participants: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Readmission within 12 months (binary, partially nested) and psychiatric bed-days (a count
    with zeros and unequal follow-up) from registry follow-up of the randomised participants.

    Drawn from their own random stream (``[seed, 16]``, issue 16) after every other column, so
    each existing value of the trial stays identical. Registry follow-up is 365 days; those
    who moved away are followed until they moved (``followup_days`` < 365; readmission within
    12 months unknown, bed-days counted over the shorter time); those who withdrew consent have
    no registry data.
    """
    c = _SERVICE_USE
    rng = np.random.default_rng([seed, 16])
    p = participants
    n = len(p)
    rand = p["randomised"].fillna(0).astype(int).to_numpy() == 1
    peer = (p["arm"] == "peer").to_numpy()
    grp = p["group"].astype(object).where(p["group"].notna(), None)
    gid = sorted({str(g) for g in grp if g is not None})
    u_of = dict(zip(gid, rng.normal(0.0, c["sd_group"], len(gid)), strict=True))
    u = np.array([u_of.get(str(g), 0.0) if g is not None else 0.0 for g in grp])
    site = dict(zip([f"Municipality {x}" for x in "ABCDE"], c["site"], strict=True))
    s_eff = np.array([site.get(x, 0.0) for x in p["site"]])
    lp = np.log(c["p_usual"] / (1 - c["p_usual"])) + s_eff + np.log(c["odds_ratio"]) * peer + u
    readmitted = rng.random(n) < 1 / (1 + np.exp(-lp))
    mean_stay = np.where(peer, c["stay_peer"], c["stay_usual"]) * np.exp(u / 2)
    lam = rng.gamma(c["stay_size"], mean_stay / c["stay_size"])
    beds = np.where(readmitted, 1 + rng.poisson(lam), 0)
    reason = p["withdrawn_reason"].fillna("").to_numpy()
    moved = rand & (reason == "moved away")
    days = np.where(moved, rng.integers(45, 330, n), 365)
    seen = rng.random(n) < days / 365  # a readmission before moving is in the registry
    beds = np.where(seen, beds, 0)
    no_data = ~rand | (reason == "withdrew consent")
    out = p.copy()
    out["readmitted_12m"] = pd.array(
        np.where(no_data | moved, None, readmitted.astype(int)), "Int64"
    )
    out["bed_days"] = pd.array(np.where(no_data, None, beds), "Int64")
    out["followup_days"] = pd.array(np.where(no_data, None, days), "Int64")
    return out


def _admission_times(participants: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Time to first psychiatric admission within 12 months (issue 17), consistent with the
    registry columns of :func:`_service_use`, from its own random stream (``[seed, 17]``): every
    existing value stays identical.

    ``admission_status``: 0 censored at 365 days, 1 admitted, 2 died (a competing event, about 2%
    of those not admitted), 3 moved abroad (competing: follow-up in the registry ends at
    ``followup_days``, unless an admission was seen before). Those who withdrew consent (and
    the unrandomised) have no registry data.
    """
    rng = np.random.default_rng([seed, 17])
    p = participants
    n = len(p)
    follow = p["followup_days"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    readm = p["readmitted_12m"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    beds = p["bed_days"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    moved = np.isfinite(follow) & (follow < 365)
    admitted = np.where(moved, beds > 0, readm == 1)
    horizon = np.where(moved, follow, 365.0)
    t_adm = np.ceil(horizon * rng.beta(1.1, 1.6, n))
    died = (rng.random(n) < 0.02) & ~admitted & np.isfinite(follow)
    t_death = rng.integers(20, 365, n).astype(float)
    died &= t_death < horizon
    status = np.select([admitted, died, moved], [1, 2, 3], default=0)
    days = np.select([admitted, died], [t_adm, t_death], default=horizon)
    none = ~np.isfinite(follow)
    out = p.copy()
    out["admission_days"] = pd.array(np.where(none, None, days.astype(int)), "Int64")
    out["admission_status"] = pd.array(np.where(none, None, status), "Int64")
    return out


_AE_TERMS = (
    "headache",
    "sleep problems",
    "increased anxiety",
    "low mood",
    "fatigue",
    "conflict in the group",
)
_AE_SERIOUS_TERMS = ("psychiatric admission", "self-harm")


def _adverse_events(participants: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Synthetic adverse events of the randomised participants (a separate random stream)."""
    rng = np.random.default_rng(seed + 1)
    rand = participants[participants["randomised"] == 1]
    rows = []
    for pid in rand["id"]:
        for _ in range(int(rng.poisson(0.30))):
            serious = bool(rng.random() < 0.10)
            terms = _AE_SERIOUS_TERMS if serious else _AE_TERMS
            rows.append(
                {"id": pid, "event": terms[int(rng.integers(len(terms)))], "serious": int(serious)}
            )
    return pd.DataFrame(rows, columns=["id", "event", "serious"])
