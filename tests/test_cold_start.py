"""Issue 22: cold start. Student's t and the normal computed in peerstats._dist agree with
scipy.stats to 1e-12 (relative), the scipy.special wrappers (F, chi-square) equal scipy.stats
exactly; importing the package and the model engine pulls in none of scipy.stats, pingouin,
matplotlib, dask, and an MMRM fit with contrasts imports neither scipy nor formulaic; Cronbach's
alpha computed in closed form equals pingouin's (the outside reference) on synthetic items."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from peerstats import _dist

HEAVY = ("scipy.stats", "pingouin", "matplotlib", "dask")


@pytest.mark.parametrize(
    "code",
    [
        "import peerstats",
        "import peerstats; peerstats.mmrm; peerstats.lmm; peerstats.load_trial",
        # a whole MMRM fit with its covariance-parameter table and contrasts (the cold script
        # of benchmarks/bench_real.py): SAS's chi-square limits come from _dist, not scipy.stats
        "import numpy as np, pandas as pd, peerstats\n"
        "r = np.random.default_rng(1); n = 40\n"
        "d = pd.DataFrame({'id': np.repeat(np.arange(n), 3), 'visit': np.tile(['v1', 'v2', 'v3'], n),"
        " 'arm': np.repeat(np.arange(n) % 2, 3).astype(str), 'y': r.normal(size=3 * n)})\n"
        "d['y'] += np.repeat(r.normal(size=n), 3)\n"
        "f = peerstats.mmrm('y ~ arm * visit', d, subject='id', visit='visit', covariance='us')\n"
        "f.covariance_parameters if hasattr(f, 'covariance_parameters') else None\n"
        "f.contrasts('arm', by='visit')",
    ],
)
def test_import_does_not_load_heavy_modules(code: str) -> None:
    probe = (
        f"{code}\nimport sys\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        "or m.startswith('scipy.stats'))\nprint(bad)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


FEV = Path(__file__).parent / "reference" / "sas_fev" / "fev_data.csv"


def test_mmrm_cold_path_imports_neither_scipy_nor_formulaic() -> None:
    """The cold script of benchmarks/bench_real.py (read the FEV data, fit the MMRM, per-visit
    contrasts) loads no scipy (t and normal from _dist, numpy's Cholesky, the covariance
    parameter table on first use) and no formulaic (models/_fast_design.py); asking for the
    covariance parameters then imports scipy.special only."""
    probe = f"""
import sys
import pandas as pd, peerstats
d = pd.read_csv({str(FEV)!r})
for c in ("AVISIT", "ARMCD", "RACE", "SEX"):
    d[c] = d[c].astype("category")
fit = peerstats.mmrm("FEV1 ~ RACE + SEX + ARMCD * AVISIT", d, subject="USUBJID", visit="AVISIT",
                     covariance="us", df="satterthwaite", reference={{"ARMCD": "PBO"}})
fit.contrasts("ARMCD", by="AVISIT")
heavy = ("scipy", "formulaic", "narwhals", "statsmodels", "patsy", "pingouin", "matplotlib")
print(sorted({{m.split(".")[0] for m in sys.modules}} & set(heavy)))
fit.cov_parameters
print(sorted(m for m in sys.modules if m.startswith("scipy.") and m.count(".") == 1))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    first, second = out.stdout.strip().splitlines()
    assert first == "[]", out.stdout
    assert "'scipy.special'" in second and "'scipy.stats'" not in second, second


X = np.array([-np.inf, -3.0, -1.0, -0.0, 0.0, 0.5, 1.96, 7.0, 40.0, np.inf, np.nan])
DFS = [0.5, 1.0, 3.7, 25.0, 1e6, np.inf, 0.0, -2.0, np.nan]
Q = np.array([0.0, 1e-12, 0.025, 0.5, 0.975, 1.0, 1.5, np.nan])
# scipy.stats itself: relative error ~1e-15 here (checked against mpmath at 40 digits); outside
# (|t| < 1e-6 with df = 1, quantiles beyond 1e150) scipy's own cephes/boost code is less exact
X_T = np.array([-40.0, -7.0, -2.0, -0.3, 0.0, 1e-3, 0.5, 1.0, 1.7, 1.96, 2.5, 3.0, 7.0, 20.0,
                1e3, 1e5])
DFS_T = [0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.7, 4.2, 10.0, 19.9, 20.1, 58.25, 150.7, 1e3, 3000.0,
         4999.0, 5000.0, 1e4, 1e6]
Q_T = np.array([1e-100, 1e-20, 1e-12, 1e-6, 0.001, 0.025, 0.05, 0.3, 0.49, 0.5, 0.51, 0.7, 0.95,
                0.975, 0.995, 0.999, 1 - 1e-9])


def _same(a, b) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # exact, NaN == NaN


def _close(a, b) -> None:
    """Relative difference below 1e-12 (and the same infinities, NaN and signs)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
    fin = np.isfinite(b)
    np.testing.assert_array_equal(a[~fin], b[~fin])
    np.testing.assert_allclose(a[fin], b[fin], rtol=1e-12, atol=0)


@pytest.mark.parametrize("df", DFS)
def test_t_and_chi2_special_arguments(df: float) -> None:
    _close(_dist.t_sf(X, df), stats.t.sf(X, df))
    _close(_dist.t_ppf(Q, df), stats.t.ppf(Q, df))
    if np.isfinite(df):
        _same(_dist.chi2_sf(X, df), stats.chi2.sf(X, df))
        _same(_dist.chi2_ppf(Q, df), stats.chi2.ppf(Q, df))


@pytest.mark.parametrize("df", DFS_T)
def test_t_agrees_with_scipy_stats_to_1e12(df: float) -> None:
    sf = stats.t.sf(X_T, df)
    ok = sf > 1e-300  # underflow of either
    _close(_dist.t_sf(X_T, df)[ok], sf[ok])
    q = stats.t.ppf(Q_T, df)
    ok = np.abs(q) < 1e150  # scipy's quantile stops there (ours: the true, larger value)
    _close(_dist.t_ppf(Q_T, df)[ok], q[ok])
    # the two are inverse to each other (our own consistency, at the same tolerance)
    t = _dist.t_ppf(0.975, df)
    assert _dist.t_sf(t, df) == pytest.approx(0.025, rel=1e-12)


def test_normal_agrees_with_scipy_stats() -> None:
    _close(_dist.norm_sf(X), stats.norm.sf(X))
    _close(_dist.norm_ppf(Q), stats.norm.ppf(Q))
    x = np.array([-8.0, -1.0, 0.3, 1.96, 5.0, 12.0, 30.0, 37.0])
    _close(_dist.norm_sf(x), stats.norm.sf(x))
    q = np.array([1e-300, 1e-20, 1e-10, 0.001, 0.025, 0.3, 0.7, 0.975, 1 - 1e-10])
    _close(_dist.norm_ppf(q), stats.norm.ppf(q))
    assert _dist.t_sf(1.96, np.inf) == _dist.norm_sf(1.96)


@pytest.mark.parametrize("dfn", [1.0, 2.0, 4.5])
@pytest.mark.parametrize("dfd", [0.7, 3.0, 58.25, 1e4, 0.0, np.nan])
def test_f_equals_scipy_stats(dfn: float, dfd: float) -> None:
    _same(_dist.f_sf(X, dfn, dfd), stats.f.sf(X, dfn, dfd))
    _same(_dist.f_isf(Q, dfn, dfd), stats.f.isf(Q, dfn, dfd))


def test_scalar_results_are_scalars() -> None:
    assert np.ndim(_dist.t_sf(2.0, 10.0)) == 0
    assert float(_dist.f_sf(3.0, 2, 20)) == float(stats.f.sf(3.0, 2, 20))


def test_cronbach_alpha_equals_pingouin() -> None:
    pg = pytest.importorskip("pingouin")
    from peerstats.instruments import cronbach_alpha

    rng = np.random.default_rng(22)
    latent = rng.normal(size=120)
    items = pd.DataFrame(
        {
            f"phq_{i}": np.clip(np.round(1.5 + latent + rng.normal(size=120)), 0, 3)
            for i in range(1, 10)
        }
    )
    items.iloc[[3, 17, 40], [0, 4, 8]] = np.nan  # listwise deletion
    res = cronbach_alpha(items, "PHQ-9")
    ref, ci = pg.cronbach_alpha(data=items, nan_policy="listwise", ci=0.95)
    assert res["n"] == 117
    assert res["alpha"] == pytest.approx(ref, abs=1e-14)
    # pingouin rounds its interval to 3 decimals
    assert res["ci_lower"] == pytest.approx(ci[0], abs=5e-4)
    assert res["ci_upper"] == pytest.approx(ci[1], abs=5e-4)


def test_glm_outcomes_and_mediation_do_not_load_statsmodels_api() -> None:
    """The pipeline's GLM outcomes and the mediation fits import the GLM classes directly:
    ``statsmodels.api`` / ``statsmodels.formula.api`` (every model, the graphics, joblib) and
    pingouin are never loaded (issue 22.3)."""
    probe = """
import sys
import numpy as np, pandas as pd
from peerstats.pipeline.outcomes._glm import fit_glm
from peerstats.effects.mediation import _fit_arrays
rng = np.random.default_rng(3)
d = pd.DataFrame({"arm": np.repeat(["a", "b"], 40), "y": rng.integers(0, 2, 80).astype(float),
                  "x": rng.normal(size=80), "cluster": np.arange(80)})
fit_glm(d, ["x"], family="binomial")
fit_glm(d.assign(y=rng.negative_binomial(2, 0.3, 80).astype(float)), ["x"], family="nb")
_fit_arrays(d["y"].to_numpy(), np.c_[np.ones(80), d["x"]], "binomial")
print(sorted(m for m in ("statsmodels.api", "statsmodels.formula.api", "pingouin") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
