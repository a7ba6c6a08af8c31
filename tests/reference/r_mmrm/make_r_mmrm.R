# Outside reference values for peerstats.mmrm (issue 3), computed with R.
#
# Run from this directory:   Rscript make_r_mmrm.R
# Writes: peer3_data.csv, arm3_hetvar_data.csv (simulated, fixed seed; only if absent, or when
#         called with --resimulate), r_mmrm_reference.json (all fits below).
# The fits always read the data back from the committed CSV files, so the JSON describes exactly
# the data the Python tests read.
#
# What is fitted, per dataset (formula in DATASETS below):
#   nlme::gls, REML:  us   = corSymm(form = ~ visit_num | subject) + varIdent(form = ~ 1 | visit)
#                     cs   = corCompSymm(form = ~ 1 | subject)
#                     csh  = corCompSymm + varIdent
#                     ar1  = corAR1(form = ~ visit_num | subject)
#                     ar1h = corAR1 + varIdent
#   nlme::gls, ML:    us
#   us REML also gets Kenward-Roger in both conventions (see kr_us() below): "kenward_roger"
#                     (W = inverse observed information, SAS / R mmrm) and
#                     "kenward_roger_pbkrtest" (W = inverse expected information, pbkrtest),
#                     linear UN(i,j) parameterisation, pbkrtest's formulas.
#   lme4::lmer (1 | subject), REML: the compound-symmetry model written as a random intercept
#                     (identical likelihood when the within-subject covariance is >= 0), with
#                     lmerTest Satterthwaite df, and Kenward-Roger twice: "kenward_roger" in the
#                     convention of SAS and R mmrm (W = inverse observed information; for one
#                     contrast the df then equal Satterthwaite's), "kenward_roger_pbkrtest" as
#                     lmerTest/pbkrtest report it (W = inverse expected information). See
#                     ../r_lmm/reml_generic.R.
# Degrees of freedom for gls fits: Satterthwaite from its definition (see satterthwaite() below),
# cross-checked against lmerTest on the cs model ("cs_reml" vs "cs_lmer") and against the integer
# df of the SAS listing sas_log.txt (us, ML) on the FEV data.
# Marginal means: emmeans(~ arm | visit), equal weights over other factors, numeric covariates at
# their mean over the analysed rows (rows with an observed outcome) = SAS LSMEANS.
# Contrasts: contrast(emm, "trt.vs.ctrl", adjust = "none") per visit (each arm minus the first).

source("../r_lmm/reml_generic.R")  # generic REML: Kenward-Roger in the SAS convention
suppressPackageStartupMessages({
  library(nlme)
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(emmeans)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
resimulate <- "--resimulate" %in% args
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)

# ----------------------------------------------------------------------------------------------
# 1. Simulated datasets (only written if absent, or with --resimulate)
# ----------------------------------------------------------------------------------------------
mvn <- function(n, sigma) {
  z <- matrix(rnorm(n * nrow(sigma)), n)
  z %*% chol(sigma)
}

simulate_peer3 <- function() {
  # Three post-baseline visits of a two-arm peer-support trial in three sites, QPR-like outcome,
  # baseline covariate, unstructured residual covariance, monotone MAR dropout (the chance of
  # leaving after a visit depends on the score observed at that visit).
  set.seed(20261123)
  n <- 150
  id <- sprintf("P%03d", seq_len(n))
  arm <- sample(rep(c("control", "peer"), length.out = n))
  site <- sample(c("S1", "S2", "S3"), n, replace = TRUE, prob = c(0.4, 0.35, 0.25))
  baseline <- round(rnorm(n, 30, 8), 1)
  sds <- c(6, 7, 8)
  corr <- matrix(c(1, 0.6, 0.45, 0.6, 1, 0.65, 0.45, 0.65, 1), 3)
  e <- mvn(n, diag(sds) %*% corr %*% diag(sds))
  site_eff <- c(S1 = 0, S2 = 1.5, S3 = -1)[site]
  mu <- outer(5 + 0.8 * baseline + site_eff, c(0, 1, 2), "+") +
    outer(arm == "peer", c(2, 3, 4)) * 1
  y <- mu + e
  # monotone MAR dropout after visits 1 and 2
  for (j in 1:2) {
    p_drop <- plogis(-2.2 - 0.08 * (y[, j] - 30))
    drop <- !is.na(y[, j]) & runif(n) < p_drop
    y[drop, (j + 1):3] <- NA
  }
  out <- data.frame(
    id = rep(id, each = 3), site = rep(site, each = 3), arm = rep(arm, each = 3),
    visit = rep(c("V1", "V2", "V3"), n), visit_num = rep(1:3, n),
    baseline = rep(baseline, each = 3), qpr = round(as.vector(t(y)), 4)
  )
  out
}

simulate_arm3 <- function() {
  # Four post-baseline visits, three arms (control, group, individual), variance rising over
  # visits (SD 4, 6, 8, 10), correlation 0.75^|i-j| + 0.1 off the diagonal, MAR dropout plus a
  # little intermittent missingness (MCAR, 4%).
  set.seed(4042026)
  n <- 180
  id <- sprintf("S%03d", seq_len(n))
  arm <- sample(rep(c("control", "group", "individual"), length.out = n))
  baseline <- round(rnorm(n, 20, 5), 1)
  sds <- c(4, 6, 8, 10)
  corr <- outer(1:4, 1:4, function(i, j) ifelse(i == j, 1, 0.75^abs(i - j) + 0.1))
  e <- mvn(n, diag(sds) %*% corr %*% diag(sds))
  arm_eff <- rbind(control = c(0, 0, 0, 0), group = c(1, 2.5, 3.5, 4),
                   individual = c(0.5, 1, 2, 2.5))[arm, ]
  mu <- outer(10 + 0.6 * baseline, c(0, -1, -1.5, -2), "+") + arm_eff
  y <- mu + e
  for (j in 1:3) {
    p_drop <- plogis(-2.4 + 0.1 * (y[, j] - 22))
    drop <- !is.na(y[, j]) & runif(n) < p_drop
    y[drop, (j + 1):4] <- NA
  }
  y[matrix(runif(n * 4) < 0.04, n)] <- NA
  data.frame(
    id = rep(id, each = 4), arm = rep(arm, each = 4),
    visit = rep(c("V1", "V2", "V3", "V4"), n), visit_num = rep(1:4, n),
    baseline = rep(baseline, each = 4), score = round(as.vector(t(y)), 4)
  )
}

if (resimulate || !file.exists("peer3_data.csv")) {
  write.csv(simulate_peer3(), "peer3_data.csv", row.names = FALSE, na = "")
}
if (resimulate || !file.exists("arm3_hetvar_data.csv")) {
  write.csv(simulate_arm3(), "arm3_hetvar_data.csv", row.names = FALSE, na = "")
}

# ----------------------------------------------------------------------------------------------
# 2. Fits
# ----------------------------------------------------------------------------------------------
DATASETS <- list(
  peer3 = list(file = "peer3_data.csv", formula = "qpr ~ baseline + site + arm * visit",
               outcome = "qpr", subject = "id", visit = "visit", visit_num = "visit_num",
               arm = "arm", factors = c("site", "arm", "visit")),
  arm3_hetvar = list(file = "arm3_hetvar_data.csv", formula = "score ~ baseline + arm * visit",
                     outcome = "score", subject = "id", visit = "visit", visit_num = "visit_num",
                     arm = "arm", factors = c("arm", "visit")),
  # The FEV data of the SAS listings (../../../../shared/reference/sas-fev/fev_data.csv, from the
  # Apache-2.0 R package mmrm), copied here so the R and SAS references use identical data.
  fev = list(file = "fev_data.csv", formula = "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
             outcome = "FEV1", subject = "USUBJID", visit = "AVISIT", visit_num = "VISITN",
             arm = "ARMCD", factors = c("RACE", "SEX", "ARMCD", "AVISIT"))
)

coef_table <- function(est, se, df) {
  t <- est / se
  list(term = names(est), estimate = unname(est), std_error = unname(se), df = unname(df),
       statistic = unname(t), p_value = unname(2 * pt(-abs(t), df)),
       ci_lower = unname(est - qt(0.975, df) * se), ci_upper = unname(est + qt(0.975, df) * se))
}

emm_tables <- function(emm, arm, visit) {
  s <- as.data.frame(summary(emm))
  ct <- as.data.frame(summary(contrast(emm, "trt.vs.ctrl", adjust = "none"), infer = TRUE))
  list(
    emmeans = list(arm = as.character(s[[arm]]), visit = as.character(s[[visit]]),
                   estimate = s$emmean, std_error = s$SE, df = s$df,
                   ci_lower = s$lower.CL, ci_upper = s$upper.CL),
    contrasts = list(visit = as.character(ct[[visit]]), contrast = as.character(ct$contrast),
                     estimate = ct$estimate, std_error = ct$SE, df = ct$df,
                     statistic = ct$t.ratio, p_value = ct$p.value,
                     ci_lower = ct$lower.CL, ci_upper = ct$upper.CL)
  )
}

cov_of_complete_subject <- function(fit, d, spec) {
  visits <- levels(d[[spec$visit]])
  counts <- table(d[[spec$subject]])
  cid <- names(counts)[counts == length(visits)][1]
  ug <- unique(as.character(fit$groups))
  v <- getVarCov(fit, individual = which(ug == cid))
  m <- matrix(as.numeric(v), nrow(v))
  list(visits = visits, matrix = m, subject_used = cid)
}

# Satterthwaite df for gls fits, from the definition (the way SAS PROC MIXED and the R package
# mmrm compute it): df(L) = 2 (L C L')^2 / (g' A g), C = (X' V^-1 X)^-1 at theta-hat,
# g_j = L (dC/dtheta_j) L', A = inverse of minus the Hessian of the REML (or ML) log-likelihood in
# theta. Derivatives by numDeriv (Richardson extrapolation). theta-hat is taken from the nlme::gls
# fit; the script checks that the likelihood written below reproduces nlme's logLik at theta-hat
# (recorded as "check_loglik_vs_nlme") and that its gradient there is ~0 ("check_max_gradient").
# At a stationary point the result does not depend on how theta is parameterised.
# (emmeans' own "appx-satterthwaite" for gls refits on randomly perturbed responses and is
# stochastic; its analytic mode is not available for corSymm, so it is not used.)
cov_from_theta <- function(theta, structure, k, tpos) {
  lag <- abs(outer(tpos, tpos, "-"))
  switch(structure,
    us = {
      S <- matrix(0, k, k); S[lower.tri(S, diag = TRUE)] <- theta
      S + t(S) - diag(diag(S), k)
    },
    cs = matrix(theta[1], k, k) + diag(theta[2], k),
    csh = {
      sd <- theta[1:k]; R <- matrix(theta[k + 1], k, k); diag(R) <- 1
      outer(sd, sd) * R
    },
    ar1 = theta[1] * theta[2]^lag,
    ar1h = {
      sd <- theta[1:k]; outer(sd, sd) * theta[k + 1]^lag
    })
}

theta_from_cov <- function(S, structure, k) {
  switch(structure,
    us = S[lower.tri(S, diag = TRUE)],
    cs = c(S[1, 2], S[1, 1] - S[1, 2]),
    csh = c(sqrt(diag(S)), S[1, 2] / sqrt(S[1, 1] * S[2, 2])),
    ar1 = c(S[1, 1], S[1, 2] / S[1, 1]),
    ar1h = c(sqrt(diag(S)), S[1, 2] / sqrt(S[1, 1] * S[2, 2])))
}

make_gaussian_lik <- function(X, y, subject, vpos, k, method) {
  # rows grouped by missingness pattern; within a pattern, subject-major, visits in order
  o <- order(subject, vpos)
  X <- X[o, , drop = FALSE]; y <- y[o]; subject <- subject[o]; vpos <- vpos[o]
  pat <- tapply(vpos, subject, function(v) paste(v, collapse = ","))
  rowpat <- pat[as.character(subject)]
  blocks <- lapply(unique(pat), function(pp) {
    r <- which(rowpat == pp)
    list(v = as.integer(strsplit(pp, ",")[[1]]), X = X[r, , drop = FALSE], y = y[r])
  })
  N <- length(y); p <- ncol(X)
  function(Sigma) {
    XtX <- matrix(0, p, p); Xty <- numeric(p); yty <- 0; logdet <- 0
    for (b in blocks) {
      q <- length(b$v); m <- length(b$y) / q
      U <- chol(Sigma[b$v, b$v, drop = FALSE])
      Ai <- t(backsolve(U, diag(q)))  # U^-T
      Xw <- matrix(Ai %*% matrix(b$X, q), m * q, p)
      yw <- as.vector(Ai %*% matrix(b$y, q))
      XtX <- XtX + crossprod(Xw); Xty <- Xty + crossprod(Xw, yw); yty <- yty + sum(yw^2)
      logdet <- logdet + m * 2 * sum(log(diag(U)))
    }
    C <- solve(XtX)
    beta <- as.vector(C %*% Xty)
    rss <- yty - sum(Xty * beta)
    ll <- if (method == "reml") {
      -0.5 * ((N - p) * log(2 * pi) + logdet + as.numeric(determinant(XtX)$modulus) + rss)
    } else {
      -0.5 * (N * log(2 * pi) + logdet + rss)
    }
    list(loglik = ll, beta = beta, vcov = C)
  }
}

satterthwaite <- function(fit, d, spec, structure, method, Sigma_hat) {
  X <- model.matrix(as.formula(spec$formula), d)
  y <- d[[spec$outcome]]
  visits <- levels(d[[spec$visit]])
  k <- length(visits)
  vpos <- as.integer(d[[spec$visit]])
  tpos <- tapply(d[[spec$visit_num]], d[[spec$visit]], function(v) v[1])[visits]
  lik <- make_gaussian_lik(X, y, as.character(d[[spec$subject]]), vpos, k, method)
  th <- theta_from_cov(Sigma_hat, structure, k)
  f_ll <- function(t) lik(cov_from_theta(t, structure, k, tpos))$loglik
  f_C <- function(t) as.vector(lik(cov_from_theta(t, structure, k, tpos))$vcov)
  at <- lik(cov_from_theta(th, structure, k, tpos))
  # Derivatives in u, theta = theta-hat + scale * u, at u = 0, with absolute steps in u (numDeriv
  # treats x = 0 as "zero": step = eps). The scale puts every parameter on the order of 1:
  # covariance element (i, j) by sqrt(S_ii S_jj), variances by S_11, SDs by themselves,
  # correlations by 1. Steps relative to each parameter's own size would be tiny for near-zero
  # covariances and drown the second differences in rounding error. Satterthwaite df do not
  # depend on this choice (at a stationary point A and g transform together).
  sd <- sqrt(diag(Sigma_hat))
  scale <- switch(structure,
    us = outer(sd, sd)[lower.tri(Sigma_hat, diag = TRUE)],
    cs = rep(Sigma_hat[1, 1], 2),
    csh = c(sd, 1), ar1 = c(Sigma_hat[1, 1], 1), ar1h = c(sd, 1))
  nd_args <- list(d = 1e-4, eps = 2e-3, zero.tol = 1, r = 4, v = 2)
  u0 <- numeric(length(th))
  g_ll <- function(u) f_ll(th + scale * u)
  g_C <- function(u) f_C(th + scale * u)
  H <- numDeriv::hessian(g_ll, u0, method.args = nd_args)
  A <- solve(-H)
  J <- numDeriv::jacobian(g_C, u0, method.args = nd_args)
  gr <- numDeriv::grad(g_ll, u0, method.args = nd_args)
  p <- ncol(X)
  dffun <- function(L) {
    L <- matrix(L, nrow = 1)
    g <- apply(J, 2, function(col) as.numeric(L %*% matrix(col, p, p) %*% t(L)))
    v <- as.numeric(L %*% at$vcov %*% t(L))
    2 * v^2 / as.numeric(t(g) %*% A %*% g)
  }
  list(dffun = dffun, loglik = at$loglik, beta = at$beta, vcov = at$vcov, theta = th,
       max_gradient = max(abs(gr)), A = A, scale = scale,
       newton_step_scaled = max(abs(as.vector(A %*% gr))))
}

# Kenward-Roger for the unstructured model (us_reml), both conventions, with pbkrtest's own
# formulas (../r_lmm/reml_generic.R: vcovAdj_internal, Lb_ddf). The covariance is parameterised
# linearly, as SAS's UN(i,j): V = sum_{i>=j} sigma_ij V_ij, V_ij the 0/1 indicator of the (i,j)
# and (j,i) visit pairs within a subject, restricted to the subject's observed visits. V is linear
# in sigma, so there is no second-derivative (R_ij) term. sigma-hat is nlme's estimate (the same
# Sigma-hat as the Satterthwaite df). W:
#   "kenward_roger"          = inverse observed REML information (SAS / R mmrm), numDeriv
#                              Hessian of the REML log-likelihood in sigma (steps scaled by
#                              sqrt(S_ii S_jj)); cross-checked against the analytic observed
#                              information  -d2l = y'P V_i P V_j P y - tr(P V_i P V_j)/2
#   "kenward_roger_pbkrtest" = inverse expected REML information tr(P V_i P V_j)/2 (pbkrtest's
#                              own, computed inside vcovAdj_internal); cross-checked against the
#                              analytic value here.
kr_us <- function(d, spec, Sigma_hat, emm, ctr) {
  X <- model.matrix(as.formula(spec$formula), d)
  y <- d[[spec$outcome]]
  k <- nrow(Sigma_hat)
  vpos <- as.integer(d[[spec$visit]])
  subj <- as.character(d[[spec$subject]])
  same <- outer(subj, subj, "==")
  idx <- which(lower.tri(Sigma_hat, diag = TRUE), arr.ind = TRUE)  # theta_from_cov order
  Vk <- lapply(seq_len(nrow(idx)), function(r) {
    i <- idx[r, 1]; j <- idx[r, 2]
    m <- (outer(vpos == i, vpos == j) | outer(vpos == j, vpos == i)) & same
    m * 1
  })
  theta <- Sigma_hat[idx]
  sd <- sqrt(diag(Sigma_hat))
  g <- generic_inference(X, y, Vk, theta, scale = sd[idx[, 1]] * sd[idx[, 2]])
  # analytic REML information at the same sigma-hat (checks)
  V <- Reduce(`+`, Map(`*`, theta, Vk))
  Vinv <- chol2inv(chol(V))
  VinvX <- Vinv %*% X
  P <- Vinv - VinvX %*% solve(crossprod(X, VinvX), t(VinvX))
  PV <- lapply(Vk, function(Vi) P %*% Vi)
  Py <- as.vector(P %*% y)
  K <- length(Vk)
  I_exp <- I_obs <- matrix(0, K, K)
  for (i in seq_len(K)) for (j in seq_len(K)) {
    tr <- sum(PV[[i]] * t(PV[[j]]))
    I_exp[i, j] <- tr / 2
    I_obs[i, j] <- as.numeric(crossprod(Py, Vk[[i]] %*% (P %*% (Vk[[j]] %*% Py)))) - tr / 2
  }
  W_exp_an <- solve(I_exp); W_obs_an <- solve(I_obs)
  est <- g$beta
  names(est) <- colnames(X)
  tab <- function(L, PhiA, dffun) {
    e <- as.vector(L %*% est)
    se <- sqrt(diag(L %*% PhiA %*% t(L)))
    df <- apply(L, 1, dffun)
    list(estimate = e, std_error = se, df = df, statistic = e / se,
         p_value = 2 * pt(-abs(e / se), df),
         ci_lower = e - qt(0.975, df) * se, ci_upper = e + qt(0.975, df) * se)
  }
  block <- function(PhiA, dffun) {
    Lc <- diag(ncol(X))
    cf <- tab(Lc, PhiA, dffun)
    eg <- emm@grid; cg <- ctr@grid
    list(
      coef = c(list(term = colnames(X)), cf),
      emmeans = c(list(arm = as.character(eg[[spec$arm]]), visit = as.character(eg[[spec$visit]])),
                  tab(emm@linfct, PhiA, dffun)[c("estimate", "std_error", "df", "ci_lower",
                                                   "ci_upper")]),
      contrasts = c(list(visit = as.character(cg[[spec$visit]]),
                         contrast = as.character(cg$contrast)),
                    tab(ctr@linfct, PhiA, dffun)))
  }
  rel <- function(a, b) max(abs(a - b)) / max(abs(b))
  list(
    kenward_roger = c(
      list(note = paste("Kenward-Roger, SAS / R mmrm convention: W = inverse observed REML",
                        "information in the linear UN(i,j) parameterisation (numDeriv Hessian",
                        "at nlme's estimate); pbkrtest's vcovAdj/Lb_ddf formulas, no R_ij term.")),
      block(g$PhiA_obs, g$kr_obs_fun)),
    kenward_roger_pbkrtest = c(
      list(note = paste("Kenward-Roger, pbkrtest's convention: W = inverse expected REML",
                        "information tr(P V_i P V_j)/2 in the linear UN(i,j) parameterisation",
                        "(pbkrtest:::vcovAdj_internal, Lb_ddf) at nlme's estimate.")),
      block(g$PhiA_exp, g$kr_exp_fun)),
    kenward_roger_checks = list(
      theta = theta, theta_index = unname(idx),
      W_observed = g$W_obs, W_expected = g$W_exp,
      check_loglik_vs_nlme_fit = NA_real_,
      # max |difference| / max |entry| of the W matrices
      check_W_obs_numeric_vs_analytic = rel(g$W_obs, W_obs_an),
      check_W_exp_pbkrtest_vs_analytic = rel(g$W_exp, W_exp_an),
      check_max_gradient = g$max_gradient,
      check_newton_step_scaled = g$newton_step_rel),
    loglik = g$loglik
  )
}

gls_fit <- function(d, spec, structure, method) {
  f <- as.formula(spec$formula)
  vform <- as.formula(paste("~", spec$visit_num, "|", spec$subject))
  corr <- switch(structure,
    us = corSymm(form = vform), cs = corCompSymm(form = as.formula(paste("~ 1 |", spec$subject))),
    csh = corCompSymm(form = as.formula(paste("~ 1 |", spec$subject))),
    ar1 = corAR1(form = vform), ar1h = corAR1(form = vform))
  corr_call <- switch(structure,
    us = call("corSymm", form = vform), ar1 = call("corAR1", form = vform),
    ar1h = call("corAR1", form = vform),
    call("corCompSymm", form = as.formula(paste("~ 1 |", spec$subject))))
  het <- structure %in% c("us", "csh", "ar1h")
  wts <- if (het) varIdent(form = as.formula(paste("~ 1 |", spec$visit))) else NULL
  fit <- do.call(gls, list(model = f, data = d, correlation = corr, weights = wts,
                           method = toupper(method),
                           control = glsControl(tolerance = 1e-10, msTol = 1e-10,
                                                maxIter = 500, msMaxIter = 500)))
  fit$call$model <- f
  covm <- cov_of_complete_subject(fit, d, spec)
  sat <- satterthwaite(fit, d, spec, structure, method, covm$matrix)
  p <- length(coef(fit))
  dfs <- vapply(seq_len(p), function(i) { L <- numeric(p); L[i] <- 1; sat$dffun(L) }, 0)
  emm <- emmeans(fit, as.formula(paste("~", spec$arm, "|", spec$visit)), mode = "df.error",
                 data = d)
  ctr <- contrast(emm, "trt.vs.ctrl", adjust = "none")
  # Covariance of beta-hat: (X' V^-1 X)^-1 at the estimate, as SAS. For REML this is vcov(fit);
  # for ML nlme's vcov() is larger by N / (N - p) (nlme rescales sigma^2), SAS's is not: the
  # SAS convention is recorded, nlme's value kept as coef$std_error_nlme.
  Vb <- sat$vcov
  dimnames(Vb) <- dimnames(vcov(fit))
  est_tab <- function(g) {
    L <- g@linfct
    est <- as.vector(L %*% coef(fit))
    se <- sqrt(diag(L %*% Vb %*% t(L)))
    df <- apply(L, 1, sat$dffun)
    list(grid = g@grid, estimate = est, std_error = se, df = df,
         statistic = est / se, p_value = 2 * pt(-abs(est / se), df),
         ci_lower = est - qt(0.975, df) * se, ci_upper = est + qt(0.975, df) * se)
  }
  e <- est_tab(emm); ct <- est_tab(ctr)
  kr <- NULL
  if (structure == "us" && method == "reml") {
    kr <- kr_us(d, spec, covm$matrix, emm, ctr)
    kr$kenward_roger_checks$check_loglik_vs_nlme_fit <- kr$loglik - as.numeric(logLik(fit))
    kr$kenward_roger_checks$check_kr_obs_coef_df_vs_satterthwaite <-
      max(abs(kr$kenward_roger$coef$df / dfs - 1))
    kr$loglik <- NULL
  }
  c(list(
    source = "nlme::gls", structure = structure, method = method,
    df_method = "satterthwaite (definition, numDeriv Hessian/Jacobian at the nlme estimate)",
    call = sprintf("gls(%s, correlation = %s, weights = %s, method = \"%s\")", spec$formula,
                   paste(deparse(corr_call), collapse = ""),
                   if (het) sprintf("varIdent(form = ~ 1 | %s)", spec$visit) else "NULL",
                   toupper(method)),
    n_obs = nrow(d), n_subjects = length(unique(d[[spec$subject]])),
    loglik = as.numeric(logLik(fit)), minus2loglik = -2 * as.numeric(logLik(fit)),
    aic = AIC(fit), bic = BIC(fit), sigma = fit$sigma,
    check_loglik_vs_nlme = sat$loglik - as.numeric(logLik(fit)),
    check_beta_vs_nlme = max(abs(sat$beta - coef(fit))),
    check_max_gradient = sat$max_gradient,
    # gradient of the log-likelihood in the scaled parameters u (see satterthwaite()) and one
    # Newton step from nlme's estimate in u: how far nlme stopped from the optimum, in units of
    # sqrt(S_ii S_jj) for covariance elements
    check_newton_step_scaled = sat$newton_step_scaled,
    theta = sat$theta,
    theta_scale = sat$scale,
    u_asymptotic_cov = sat$A,
    check_vcov_rel_vs_nlme = max(abs(Vb / vcov(fit) - 1)),
    coef = c(coef_table(coef(fit), sqrt(diag(Vb)), dfs),
             list(std_error_nlme = unname(sqrt(diag(vcov(fit)))))),
    covariance = covm,
    emmeans = list(arm = as.character(e$grid[[spec$arm]]),
                   visit = as.character(e$grid[[spec$visit]]),
                   estimate = e$estimate, std_error = e$std_error, df = e$df,
                   ci_lower = e$ci_lower, ci_upper = e$ci_upper),
    contrasts = list(visit = as.character(ct$grid[[spec$visit]]),
                     contrast = as.character(ct$grid$contrast),
                     estimate = ct$estimate, std_error = ct$std_error, df = ct$df,
                     statistic = ct$statistic, p_value = ct$p_value,
                     ci_lower = ct$ci_lower, ci_upper = ct$ci_upper)
  ), kr)
}

lmer_fit <- function(d, spec) {
  f <- as.formula(paste(spec$formula, "+ (1 |", spec$subject, ")"))
  fit <- lmerTest::lmer(f, data = d, REML = TRUE,
                        control = lmerControl(optimizer = "bobyqa",
                                              optCtrl = list(maxfun = 1e5, rhoend = 1e-10)))
  vc <- as.data.frame(VarCorr(fit))
  tau2 <- vc$vcov[vc$grp == spec$subject]
  s2 <- vc$vcov[vc$grp == "Residual"]
  visits <- levels(d[[spec$visit]])
  k <- length(visits)
  covm <- matrix(tau2, k, k) + diag(s2, k)
  sat <- summary(fit, ddf = "Satterthwaite")$coefficients
  kr <- summary(fit, ddf = "Kenward-Roger")$coefficients
  vadj <- as.matrix(pbkrtest::vcovAdj(fit))
  est <- fixef(fit)
  spec_emm <- as.formula(paste("~", spec$arm, "|", spec$visit))
  emm_s <- emmeans(fit, spec_emm, lmer.df = "satterthwaite")
  emm_k <- emmeans(fit, spec_emm, lmer.df = "kenward-roger")
  # Kenward-Roger in the convention of SAS and R mmrm (W = inverse observed REML information),
  # from ../r_lmm/reml_generic.R with V = tau^2 Z Z' + sigma^2 I (SAS's CS parameters)
  Z <- model.matrix(as.formula(paste("~ 0 +", spec$subject)), d)
  g <- generic_inference(getME(fit, "X"), getME(fit, "y"),
                         list(tcrossprod(Z), diag(nrow(d))), c(tau2, s2))
  b <- est
  kr_tab <- function(grid_obj, by_cols) {
    L <- grid_obj@linfct
    e <- as.vector(L %*% b)
    se <- sqrt(diag(L %*% g$PhiA_obs %*% t(L)))
    df <- apply(L, 1, g$kr_obs_fun)
    c(lapply(setNames(by_cols, by_cols), function(cc) as.character(grid_obj@grid[[cc]])),
      list(estimate = e, std_error = se, df = df, statistic = e / se,
           p_value = 2 * pt(-abs(e / se), df),
           ci_lower = e - qt(0.975, df) * se, ci_upper = e + qt(0.975, df) * se))
  }
  emm_plain <- emmeans(fit, spec_emm, lmer.df = "asymptotic")
  e_k <- kr_tab(emm_plain, c(spec$arm, spec$visit))
  c_k <- kr_tab(contrast(emm_plain, "trt.vs.ctrl", adjust = "none"), c(spec$visit, "contrast"))
  list(
    source = "lme4::lmer + lmerTest + pbkrtest",
    structure = "cs", method = "reml",
    call = paste(deparse(formula(fit), width.cutoff = 500L), collapse = " "),
    note = paste("Compound symmetry written as a random subject intercept. Kenward-Roger twice:",
                 "'kenward_roger' in the SAS / R mmrm convention (W = inverse observed",
                 "information; for one contrast its df equal Satterthwaite's) and",
                 "'kenward_roger_pbkrtest' = lmerTest/pbkrtest (W = inverse expected",
                 "information). CS is linear in (tau^2, sigma^2), SAS's own CS parameters, so",
                 "there are no second-derivative terms."),
    n_obs = nrow(d), n_subjects = length(unique(d[[spec$subject]])),
    loglik = as.numeric(logLik(fit)), minus2loglik = -2 * as.numeric(logLik(fit)),
    covariance = list(visits = visits, matrix = covm),
    variance_components = list(tau2 = tau2, sigma2 = s2),
    check_generic = list(loglik = g$loglik - as.numeric(logLik(fit)),
                         max_rel_sat_df = max(abs(g$sat_df / sat[, "df"] - 1)),
                         max_rel_kr_df_expected_info = max(abs(g$kr_exp_df / kr[, "df"] - 1)),
                         max_rel_kr_se_expected_info = max(abs(g$kr_exp_se /
                                                                 sqrt(diag(vadj)) - 1))),
    satterthwaite = c(
      list(coef = coef_table(est, sat[, "Std. Error"], sat[, "df"])),
      emm_tables(emm_s, spec$arm, spec$visit)),
    kenward_roger = list(
      coef = coef_table(est, g$kr_obs_se, g$kr_obs_df),
      emmeans = setNames(e_k, c("arm", "visit", names(e_k)[-(1:2)])),
      contrasts = setNames(c_k, c("visit", names(c_k)[-1]))),
    kenward_roger_pbkrtest = c(
      list(coef = coef_table(est, sqrt(diag(vadj)), kr[, "df"]),
           coef_std_error_unadjusted = unname(sqrt(diag(as.matrix(vcov(fit)))))),
      emm_tables(emm_k, spec$arm, spec$visit))
  )
}

out <- list(
  generated_by = "tests/reference/r_mmrm/make_r_mmrm.R",
  r_version = R.version.string,
  packages = sapply(c("nlme", "lme4", "lmerTest", "pbkrtest", "emmeans", "jsonlite"),
                    function(p) as.character(packageVersion(p)), simplify = FALSE),
  datasets = list()
)

for (name in names(DATASETS)) {
  spec <- DATASETS[[name]]
  raw <- read.csv(spec$file, stringsAsFactors = FALSE)
  d <- raw[!is.na(raw[[spec$outcome]]), ]
  for (fc in spec$factors) d[[fc]] <- factor(d[[fc]])  # levels sorted = first level reference
  message("== ", name, ": ", nrow(d), " of ", nrow(raw), " rows observed")
  covariates <- Filter(function(v) is.numeric(d[[v]]),
                       setdiff(all.vars(as.formula(spec$formula)), spec$outcome))
  fits <- list()
  for (s in c("us", "cs", "csh", "ar1", "ar1h")) {
    message("   gls ", s, " REML")
    fits[[paste0(s, "_reml")]] <- gls_fit(d, spec, s, "reml")
  }
  message("   gls us ML")
  fits[["us_ml"]] <- gls_fit(d, spec, "us", "ml")
  message("   lmer cs")
  fits[["cs_lmer"]] <- lmer_fit(d, spec)
  out$datasets[[name]] <- list(
    file = spec$file, formula = spec$formula, outcome = spec$outcome, subject = spec$subject,
    visit = spec$visit, visit_num = spec$visit_num, arm = spec$arm,
    factor_levels = lapply(setNames(spec$factors, spec$factors), function(fc) levels(d[[fc]])),
    n_rows = nrow(raw), n_obs = nrow(d), n_dropped = nrow(raw) - nrow(d),
    n_subjects = length(unique(d[[spec$subject]])),
    covariate_means = as.list(colMeans(d[, covariates, drop = FALSE])),
    fits = fits
  )
}

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "r_mmrm_reference.json")
message("wrote r_mmrm_reference.json")
