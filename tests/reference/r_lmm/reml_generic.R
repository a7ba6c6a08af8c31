# REML for V = sum_k theta_k V_k written from its definition, with Satterthwaite and
# Kenward-Roger computed around it. Sourced by make_r_lmm.R and ../r_mmrm/make_r_mmrm.R.
#
# Used only where no R package gives the number (lme fits with arm-specific variances) and to
# state the Kenward-Roger convention of SAS and R mmrm next to pbkrtest's:
#   * pbkrtest (and lmerTest's ddf = "Kenward-Roger") take W, the covariance of the variance
#     parameters, as the inverse *expected* information;
#   * SAS PROC MIXED and the R package mmrm take W as the inverse *observed* information (the
#     Hessian of the REML log-likelihood; mmrm vignette "Kenward-Roger"), with which the KR df of
#     a single contrast equal the Satterthwaite df.
# Both are written to the JSON; the Python tests check the SAS convention. The KR formulas are
# pbkrtest's own: its internal vcovAdj_internal (adjusted covariance) and Lb_ddf (df), fed either
# with its own W or with the observed one.
# Every quantity is checked against lme4/lmerTest/pbkrtest on models they fit (see the check_*
# entries in the JSON).

make_reml <- function(X, y, Vk) {
  N <- length(y); p <- ncol(X)
  function(theta) {
    V <- Reduce(`+`, Map(`*`, theta, Vk))
    U <- chol(V)
    Xw <- backsolve(U, X, transpose = TRUE); yw <- backsolve(U, y, transpose = TRUE)
    XtX <- crossprod(Xw); C <- solve(XtX)
    beta <- as.vector(C %*% crossprod(Xw, yw))
    r <- yw - Xw %*% beta
    ll <- -0.5 * ((N - p) * log(2 * pi) + 2 * sum(log(diag(U))) +
                    as.numeric(determinant(XtX)$modulus) + sum(r^2))
    list(loglik = ll, beta = beta, vcov = C, V = V)
  }
}

# Derivatives at theta-hat in u, theta = theta-hat + scale * u, absolute steps in u (see
# make_r_mmrm.R for why): by default scale = the total variance for every component; a vector
# `scale` (one entry per component) may be given instead (the us MMRM uses sqrt(S_ii S_jj)).
generic_inference <- function(X, y, Vk, theta, scale = NULL) {
  lik <- make_reml(X, y, Vk)
  at <- lik(theta)
  p <- ncol(X)
  s <- if (is.null(scale)) sum(theta[theta > 0]) else scale  # variance scale(s)
  nd <- list(d = 1e-4, eps = 2e-3, zero.tol = 1, r = 4, v = 2)
  u0 <- numeric(length(theta))
  f_ll <- function(u) lik(theta + s * u)$loglik
  H_u <- numDeriv::hessian(f_ll, u0, method.args = nd)
  gr_u <- numDeriv::grad(f_ll, u0, method.args = nd)
  J_u <- numDeriv::jacobian(function(u) as.vector(lik(theta + s * u)$vcov), u0,
                            method.args = nd)
  # back to theta: A = cov(theta-hat) = s^2 (-H_u)^-1, dC/dtheta = J_u / s (s a scalar), or
  # diag(s) (-H_u)^-1 diag(s) and column j of J_u / s_j (s a vector)
  W_obs <- if (length(s) == 1) s^2 * solve(-H_u) else outer(s, s) * solve(-H_u)
  J <- if (length(s) == 1) J_u / s else sweep(J_u, 2, s, "/")
  sat <- function(L) {
    L <- matrix(L, nrow = 1)
    g <- apply(J, 2, function(col) as.numeric(L %*% matrix(col, p, p) %*% t(L)))
    2 * as.numeric(L %*% at$vcov %*% t(L))^2 / as.numeric(t(g) %*% W_obs %*% g)
  }
  # pbkrtest's adjustment with its own (expected-information) W
  Vadj_exp <- pbkrtest:::vcovAdj_internal(at$vcov, list(Sigma = at$V, G = Vk,
                                                        n.ggamma = length(Vk)), X)
  # the same with the observed-information W: Phi_A = Phi + 2 Phi [sum W_ij (Q_ij - P_i Phi P_j)]
  # Phi, P_i = -X' V^-1 V_i V^-1 X, Q_ij = X' V^-1 V_i V^-1 V_j V^-1 X (linear V: no R_ij term)
  Vinv <- chol2inv(chol(at$V))
  VinvX <- Vinv %*% X
  O <- lapply(Vk, function(Vi) Vi %*% VinvX)          # V_i V^-1 X
  P <- lapply(O, function(Oi) -crossprod(VinvX, Oi))
  Phi <- at$vcov
  K <- length(Vk)
  S <- matrix(0, p, p)
  for (i in seq_len(K)) for (j in seq_len(K)) {
    Qij <- crossprod(O[[i]], Vinv %*% O[[j]])
    S <- S + W_obs[i, j] * (Qij - P[[i]] %*% Phi %*% P[[j]])
  }
  PhiA_obs <- Phi + 2 * Phi %*% S %*% Phi
  Vadj_obs <- PhiA_obs
  attr(Vadj_obs, "P") <- P
  attr(Vadj_obs, "W") <- W_obs
  I <- diag(p)
  list(loglik = at$loglik, beta = at$beta, se = sqrt(diag(Phi)), W_obs = W_obs,
       W_exp = as.matrix(attr(Vadj_exp, "W")),
       sat_df = apply(I, 1, sat),
       sat_fun = sat,
       kr_obs_df = apply(I, 1, function(L) pbkrtest:::Lb_ddf(matrix(L, 1), Phi, Vadj_obs)),
       kr_obs_se = sqrt(diag(PhiA_obs)),
       kr_obs_fun = function(L) pbkrtest:::Lb_ddf(matrix(L, 1), Phi, Vadj_obs),
       PhiA_obs = PhiA_obs,
       kr_exp_df = apply(I, 1, function(L) pbkrtest:::Lb_ddf(matrix(L, 1), Phi, Vadj_exp)),
       kr_exp_se = sqrt(diag(as.matrix(Vadj_exp))),
       kr_exp_fun = function(L) pbkrtest:::Lb_ddf(matrix(L, 1), Phi, Vadj_exp),
       PhiA_exp = as.matrix(Vadj_exp),
       H_u = H_u,
       max_gradient = max(abs(gr_u / s)),
       newton_step_rel = max(abs(solve(-H_u, gr_u))))
}
