"""Working correlations for :func:`peerstats.gee` with geepack's moment estimators.

statsmodels' GEE (the fitter we use) and R geepack solve the same estimating equations for the
regression coefficients; they differ only in how the working-correlation parameters are
estimated from the Pearson residuals e_ij = (y_ij - mu_ij) / sqrt(v(mu_ij)). We subclass
statsmodels' ``CovStruct`` so the estimates are geepack's (Yan & Fine 2004, geese's default
``cor.link = "identity"`` moment estimators), which is what a reader compares against:

- scale phi = sum e_ij^2 / N (no degrees-of-freedom correction);
- exchangeable: alpha = sum_i sum_{j<k} e_ij e_ik / (phi * number of pairs);
- AR(1) on the visit positions t: alpha minimises sum_i sum_{j<k} (e_ij e_ik / phi -
  alpha^|t_ij - t_ik|)^2 over all within-cluster pairs (geepack's Gauss-Newton target);
  statsmodels' own AR(1) uses lag-1/lag-0 ratios and assumes consecutive positions;
- unstructured: alpha_jk = mean over clusters observed at positions j and k of e_ij e_ik / phi
  (statsmodels normalises by per-visit variances instead of the pooled phi).

Validated against geepack::geeglm in tests/models/test_gee.py (tests/reference/r_gee/).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from statsmodels.genmod import cov_struct as sm_cov

__all__ = ["GeepackExchangeable", "GeepackAR1", "GeepackUnstructured", "pearson_by_cluster"]


def pearson_by_cluster(model) -> tuple[list[np.ndarray], float]:
    """Pearson residuals per cluster and geepack's scale sum(e^2) / N."""
    varfunc = model.family.variance
    out = []
    ss = 0.0
    n = 0
    for i in range(model.num_group):
        expval, _ = model.cached_means[i]
        e = (model.endog_li[i] - expval) / np.sqrt(varfunc(expval))
        out.append(e)
        ss += float(e @ e)
        n += len(e)
    return out, ss / n


class GeepackExchangeable(sm_cov.Exchangeable):
    """Exchangeable working correlation, alpha estimated as geepack."""

    def update(self, params):  # noqa: D102 - statsmodels' interface
        res, phi = pearson_by_cluster(self.model)
        num = 0.0
        pairs = 0.0
        for e in res:
            num += (e.sum() ** 2 - e @ e) / 2
            pairs += len(e) * (len(e) - 1) / 2
        self.dep_params = num / (pairs * phi) if pairs > 0 else 0.0


class _PositionCovStruct(sm_cov.CovStruct):
    """A working correlation indexed by integer visit positions (``model.time``)."""

    def _positions(self, index: int) -> np.ndarray:
        return np.asarray(self.model.time_li[index][:, 0], dtype=int)

    def _pair_products(self):
        res, phi = pearson_by_cluster(self.model)
        for i, e in enumerate(res):
            t = self._positions(i)
            j, k = np.triu_indices(len(e), 1)
            yield t[j], t[k], e[j] * e[k] / phi

    def covariance_matrix_solve(self, expval, index, stdev, rhs):  # noqa: D102
        # the dense solve of the base class: positions may have gaps (a missed visit)
        return sm_cov.CovStruct.covariance_matrix_solve(self, expval, index, stdev, rhs)


class GeepackAR1(_PositionCovStruct):
    """AR(1) working correlation alpha^|t_j - t_k| over visit positions, alpha as geepack."""

    def __init__(self):
        super().__init__()
        self.dep_params = 0.0

    def update(self, params):  # noqa: D102
        lags, prods = [], []
        for tj, tk, pr in self._pair_products():
            lags.append(np.abs(tj - tk))
            prods.append(pr)
        if not lags or not np.concatenate(lags).size:
            self.dep_params = 0.0
            return
        lag = np.concatenate(lags).astype(float)
        val = np.concatenate(prods)

        def score(a: float) -> float:
            return float(np.sum((val - a**lag) * lag * a ** (lag - 1)))

        lo, hi = -0.999, 0.999
        if score(lo) * score(hi) > 0:  # no interior root: the boundary nearer the data
            self.dep_params = hi if score(hi) > 0 else lo
            return
        self.dep_params = brentq(score, lo, hi, xtol=1e-14)

    def covariance_matrix(self, expval, index):  # noqa: D102
        t = self._positions(index)
        return self.dep_params ** np.abs(np.subtract.outer(t, t)).astype(float), True

    def summary(self) -> str:
        return f"AR(1) working correlation parameter: {self.dep_params:.6g}"


class GeepackUnstructured(_PositionCovStruct):
    """Unstructured working correlation over visit positions, alpha_jk as geepack."""

    def initialize(self, model):  # noqa: D102
        super().initialize(model)
        q = int(np.max(model.time[:, 0])) + 1
        self.dep_params = np.eye(q)

    def update(self, params):  # noqa: D102
        q = self.dep_params.shape[0]
        num = np.zeros((q, q))
        cnt = np.zeros((q, q))
        for tj, tk, pr in self._pair_products():
            np.add.at(num, (tj, tk), pr)
            np.add.at(cnt, (tj, tk), 1.0)
        num = num + num.T
        cnt = cnt + cnt.T
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.where(cnt > 0, num / np.where(cnt > 0, cnt, 1.0), 0.0)
        np.fill_diagonal(R, 1.0)
        self.dep_params = R

    def covariance_matrix(self, expval, index):  # noqa: D102
        t = self._positions(index)
        return self.dep_params[np.ix_(t, t)], True

    def summary(self) -> str:
        return f"Unstructured working correlation:\n{self.dep_params}"
