"""One ``peerstats.lmm`` refitted on many responses: only the contrasts' numbers come back
(private; the pipeline's imputation-based sensitivity analyses and tipping points).

A multiple-imputation or tipping-point analysis with the primary partially nested model fits
the same model to hundreds of completed datasets that differ only in the outcome's values
(13 deltas x 20 imputations in the bundled PEER analysis). :class:`PreparedLMM` already keeps
the fixed and random designs; :class:`ResponseRefitter` also keeps the blocks of
:func:`~peerstats.models._rancov.build_blocks` and the likelihood object, and per response
recomputes only what depends on y (the pooled block statistics, or the padded unit rows), fits
the covariance parameters with the same engine and the same boundary refits
(:func:`~peerstats.models._lmm_fit.fit_on_layout`), and returns, per contrast row ``ell``,
the estimate ``ell' beta``, its variance ``ell' C ell`` and its degrees of freedom
(:class:`~peerstats.models._ddf.Inference`, the fit's ``df`` method), with the fit's
singularity (as ``LMMResult.singular``) and its full theta (the warm start of a neighbouring
refit). No result object, reference grid or data frame is built per refit.

Notes
-----
Every step is the one :func:`peerstats.lmm` takes on the same arrays: the block statistics
come from the same cross products (``_gram_stats``) of the same rows, the likelihood is
evaluated by the same code, the fit has the same rules (profiled start, projected Newton,
components below lme4's ``isSingular`` tolerance fixed at zero and refitted), and the contrast
numbers are those of ``Inference.test_1d``. From the same start the numbers are identical to
:func:`peerstats.lmm`'s (tests/models/test_lmm_many.py); from another start (a neighbouring
delta's optimum) they agree to the optimiser's convergence tolerance. The outside reference
of the pipeline's pooled numbers remains nlme::lme (tests/reference/r_sens_primary/).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from peerstats.exceptions import ModelSpecificationError, SingularFitWarning
from peerstats.models._lmm_fit import _SINGULAR_TOL, _engine, fit_on_layout, start
from peerstats.models._lmm_likelihood import _flat_statistics
from peerstats.models._lmm_output import inference, singular_terms
from peerstats.models._lmm_units import RowLikelihood
from peerstats.models._rancov import build_blocks
from peerstats.models._reml import _gram_stats
from peerstats.models.emmeans import emmeans_matrix

__all__ = ["Refit", "ResponseRefitter", "contrast_rows"]


def contrast_rows(
    design, arm: str, by: str | None, reference: str | None
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The rows of ``LMMResult.contrasts(arm, by=by, reference=reference)``: keys
    ``(by level as text, "<arm> - <reference>")`` (by level ``""`` without ``by``) and the
    contrast matrix (one row per key), in that method's order."""
    if arm not in design.factors or (by is not None and by not in design.factors):
        raise ModelSpecificationError(
            f"{arm!r} / {by!r} must be factors of the model; factors are {list(design.factors)}"
        )
    levels = design.factors[arm]
    ref = levels[0] if reference is None else str(reference)
    if ref not in levels:
        raise ModelSpecificationError(f"reference={ref!r} is not a level of {arm!r}: {levels}")
    frame, L = emmeans_matrix(design, [arm] + ([by] if by else []))
    arms = frame[arm].astype(str).to_numpy()
    bys = frame[by].astype(str).to_numpy() if by else np.array([""] * len(frame))
    raw = (design.natural_order.get(by) or design.factors[by]) if by else [""]
    keys, rows = [], []
    for b in [str(v) for v in raw]:
        r = np.flatnonzero((arms == ref) & (bys == b))[0]
        for a in levels:
            if a != ref:
                k = np.flatnonzero((arms == a) & (bys == b))[0]
                keys.append((b, f"{a} - {ref}"))
                rows.append(L[k] - L[r])
    return keys, np.array(rows)


@dataclass
class Refit:
    """The contrasts of one refit: ``estimate``, ``variance`` (the squared standard error),
    ``df`` per contrast row; ``singular`` as ``LMMResult.singular``; ``theta`` the full
    covariance parameters at the optimum (zeros where a component was fixed at zero)."""

    estimate: np.ndarray
    variance: np.ndarray
    df: np.ndarray
    singular: bool
    theta: np.ndarray


class ResponseRefitter:
    """Refits of a :class:`~peerstats.models._lmm_prepared.PreparedLMM` on new responses.

    ``L`` (k, p): the contrast rows whose estimate, variance and df each refit returns (see
    :func:`contrast_rows`). Models with a residual structure across visits are refused
    (ModelSpecificationError): their engine pools per subject and visit, not per block.
    """

    def __init__(self, prepared, L: np.ndarray) -> None:
        d = prepared.d
        if d.structure is not None:
            raise ModelSpecificationError("ResponseRefitter needs independent residuals")
        self.prepared = prepared
        self.d, self.opt = d, prepared.opt
        self.L = np.asarray(L, dtype=float)
        X = d.design.X
        self.layout = build_blocks(
            X, d.design.y, d.rdesigns, res_code=d.res_code, subject=d.subj_codes,
            position=d.vpos,
        )  # fmt: skip
        self.lik = _engine(self.layout, d, self.opt.method).lik
        self.n_theta = start(d).size
        self.n_refits = 0
        self._batch = _batch_rows(self.layout, d, self.opt)

    @property
    def rows(self) -> np.ndarray:
        """Positions of the rows the model uses in the prepared data (the response's rows)."""
        return self.d.design.rows

    def _set_response(self, y: np.ndarray):
        """The prepared designs with response ``y`` (the used rows); the blocks' statistics
        and the likelihood's y-parts recomputed from it."""
        d, lay, lik = self.d, self.layout, self.lik
        X = d.design.X
        p = X.shape[1]
        Zall = np.concatenate([X, y[:, None]], axis=1)
        for sc, rows_c in zip(lay.classes, lay.rows):
            for t, members in enumerate(rows_c):
                sc.SXX[t], sc.SXy[t], sc.Syy[t] = _gram_stats(Zall[members], sc.m, p)
        if isinstance(lik, RowLikelihood):
            lik.units = [lik._units(lay, bk, X, y) for bk in lik.buckets]
        else:
            order = [c for bk in lik.buckets for c in bk.members]
            lik.SXX, lik.SXy, lik.Syy, lik.ptr = _flat_statistics(lay, order, p)
        return dataclasses.replace(d, design=dataclasses.replace(d.design, y=y))

    def refit(self, y: np.ndarray, start_theta: np.ndarray | None = None) -> Refit:
        """Fit the model to the response ``y`` (one value per used row, :attr:`rows`) from
        ``start_theta`` (a full theta; None: the moment-based start of :func:`peerstats.lmm`).

        Raises ConvergenceError as :func:`peerstats.lmm` does, and ModelSpecificationError for
        a start of the wrong length or a response of the wrong length or not finite.
        """
        y = np.asarray(y, dtype=float)
        if y.shape != (self.d.n_obs,) or not np.all(np.isfinite(y)):
            raise ModelSpecificationError(
                f"the response must be {self.d.n_obs} finite values (the used rows); got "
                f"shape {y.shape}"
            )
        d = self._set_response(y)
        theta0 = start(d) if start_theta is None else np.asarray(start_theta, dtype=float)
        if theta0.shape != (self.n_theta,) or not np.all(np.isfinite(theta0)):
            raise ModelSpecificationError(
                f"start must be {self.n_theta} finite variance parameters; got {theta0.size}"
            )
        fc = fit_on_layout(self.layout, d, self.opt.method, theta0, lik=self.lik)
        self.n_refits += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            singular, _ = singular_terms(d, fc.cov.G_list(fc.theta_full))
        inf = inference(fc, d, self.opt)
        est, se, dfs = [], [], []
        for ell in self.L:  # the expressions of Inference.test_1d
            est.append(float(ell @ inf.beta))
            se.append(float(np.sqrt(ell @ inf.vcov @ ell)))
            dfs.append(inf.df_1d(ell))
        var = np.array(se) ** 2
        return Refit(np.array(est), var, np.array(dfs), bool(singular), fc.theta_full)

    def refit_many(self, Y: np.ndarray, starts: np.ndarray) -> list[Refit | None]:
        """Refits of the responses ``Y`` (S, used rows) from the full thetas ``starts``
        (S, K) together (:func:`~peerstats.models._lmm_many_batch.batched_newton`), where
        the model qualifies (one-column random terms, Satterthwaite, model-based covariance).
        An entry is None where the batch did not settle the problem (no finite start, not
        converged, a variance component below the singularity tolerance but not at zero: the
        boundary refit of :func:`fit_on_layout` moves it); :meth:`refit` fits those one by
        one."""
        from peerstats.models._lmm_many_batch import _Maps, batched_newton

        Y, starts = np.asarray(Y, dtype=float), np.asarray(starts, dtype=float)
        out: list[Refit | None] = [None] * len(Y)
        use = np.flatnonzero(np.all(np.isfinite(starts), axis=1) & np.all(np.isfinite(Y), axis=1))
        if self._batch is None or not use.size or starts.shape[1:] != (self.n_theta,):
            return out
        nv = len(self.d.rdesigns)
        self._batch.set_responses(Y[use])
        phi0 = starts[use].copy()
        phi0[:, :nv] **= 2
        phi, conv, st = batched_newton(self._batch, phi0, self.d.n_obs, nv)
        theta = phi.copy()
        theta[:, :nv] = np.sqrt(np.maximum(phi[:, :nv], 0.0))
        sig = np.sqrt(np.mean(np.exp(theta[:, nv:]), axis=1))
        # a component below lme4's isSingular tolerance is refitted fixed at zero: here only
        # where the projected Newton holds it exactly at zero (the refit's optimum is then the
        # same point, so its numbers are those of the free components); else one by one
        small = np.abs(theta[:, :nv]) < _SINGULAR_TOL * sig[:, None]
        settled = conv & ~np.any(small & (phi[:, :nv] != 0), axis=1)
        _, H, jd = _Maps(nv, self.n_theta - nv).chain(theta, st["gradient"], st["hessian"], True)
        for j in np.flatnonzero(settled):
            free = np.r_[~small[j], np.ones(self.n_theta - nv, dtype=bool)]
            P = (jd[j][:, None, None] * st["P"][j])[free]
            W = 2 * np.linalg.inv(H[j][np.ix_(free, free)])
            theta[j, :nv][small[j]] = 0.0
            out[use[j]] = self._contrasts(st["beta"][j], st["C"][j], P, W, theta[j])
        self.n_refits += int(settled.sum())
        return out

    def _contrasts(self, beta, C, P, W, theta) -> Refit:
        """The contrasts of a batched refit (the expressions of ``Inference.test_1d``)."""
        from peerstats.models._ddf import Inference

        inf = Inference(beta=beta, C=C, P=P, W=W, method="satterthwaite", df_residual=0.0)
        est, se, dfs = [], [], []
        for ell in self.L:
            est.append(float(ell @ inf.beta))
            se.append(float(np.sqrt(ell @ inf.vcov @ ell)))
            dfs.append(inf.df_1d(ell))
        singular = bool(np.any(theta[: len(self.d.rdesigns)] ** 2 == 0))
        return Refit(np.array(est), np.array(se) ** 2, np.array(dfs), singular, theta)


def _batch_rows(layout, d, opt):
    """The batched row likelihood where the model qualifies for :meth:`refit_many`, else None."""
    from peerstats.models._lmm_many_batch import BatchedRows

    if any(rd.q != 1 for rd in d.rdesigns) or d.structure is not None:
        return None
    if opt.df != "satterthwaite" or opt.vcov != "model":
        return None
    return BatchedRows(layout, d.design.X, [1] * len(d.rdesigns), len(d.res_levels), opt.method)
