# Outside reference values for peerstats.mmrm's spatial covariance structures (issue 10.5),
# computed with R nlme::gls (REML).
#
# Run from this directory:   Rscript make_r_spatial.R [--resimulate]
# Writes: spatial_data.csv (SYNTHETIC data, simulated here with a fixed seed; only if absent or
#         with --resimulate) and r_spatial_nlme.json (the fits below, full precision).
# The fits always read the data back from the committed CSV, so the JSON describes exactly the
# data the Python tests read.
#
# Fits (all nlme::gls, REML, nugget-free, formula score ~ baseline + arm * visit):
#   sp_exp    corExp(form = ~ day | id)           corr = exp(-d / range)      = SAS SP(EXP)(day)
#   sp_gau    corGaus(form = ~ day | id)          corr = exp(-(d / range)^2)  = SAS SP(GAU)(day)
#   sp_pow    corCAR1(form = ~ day | id)          corr = phi^d                = SAS SP(POW)(day)
#   sp_exp_2d corExp(form = ~ x1 + x2 | id)       d Euclidean in (x1, x2)     = SAS SP(EXP)(x1 x2)
#   sp_exp_planned  corExp(form = ~ planned | id) at the planned days (14, 42, 84, 168 for
#             V1-V4; not a CSV column, derived from visit): every subject with the same visits
#             shares one time vector, so subjects pool into few block types
#   sp_exp_ml corExp(form = ~ day | id), method = "ML"
# Each entry: coef (term, estimate, std_error), loglik, minus2loglik (nlme's REML log-likelihood
# is on SAS's scale, see ../r_mmrm/README.md), sigma2 (residual variance = SAS "Residual"),
# range / phi (SAS SP(EXP) / SP(GAU) / SP(POW)), n_obs, n_subjects.
#
# Empirical (sandwich) covariance, entries sp_exp_sandwich and sp_exp_2d_sandwich: the sp_exp /
# sp_exp_2d gls fits on the subjects with at least two observed outcomes (clubSandwich 0.5.8
# stops with "non-conformable arguments" on corExp fits with one-observation subjects; corAR1
# fits of the same data work), with clubSandwich::vcovCR(fit, cluster = id, type = "CR0" /
# "CR2" / "CR3") (each subject's own V from getVarCov) and coef_test(test = "Satterthwaite") df
# in the block "sandwich".
#
# Kenward-Roger for sp_exp and sp_gau (no R package fits it in SAS's parameterisation), block
# "kenward_roger" of those entries: Kenward & Roger (1997) in SAS's covariance parameters
# psi = (range, Residual) with W = inverse observed REML information (SAS's default):
#   Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j - R_ij / 4)] Phi,
#   P_i = -X'V^-1 V_i V^-1 X, Q_ij = X'V^-1 V_i V^-1 V_j V^-1 X, R_ij = X'V^-1 V_ij V^-1 X,
# with V_i, V_ij the first and second derivatives of each subject's V in psi by numDeriv
# (Richardson), W from the numDeriv Hessian of the REML log-likelihood written out below (its
# value at nlme's estimate is recorded against nlme's logLik), and the df from pbkrtest's own
# Lb_ddf (which uses Phi, Phi_A, P and W). Written independently of peerstats.
suppressPackageStartupMessages({
  library(nlme)
  library(jsonlite)
  library(numDeriv)
  library(pbkrtest)
  library(clubSandwich)
})
args <- commandArgs(trailingOnly = TRUE)
resimulate <- "--resimulate" %in% args

simulate_spatial <- function() {
  # SYNTHETIC. 150 subjects, two arms, 4 visits planned at days 14, 42, 84, 168, each actually
  # taking place on a subject-specific day (planned day + uniform integer jitter of -10..10 days).
  # Residuals: variance 36, exponential correlation exp(-d / 45) in days (d = |day_i - day_j|).
  # Monotone MAR dropout after visits 1-3 and 3% intermittent missingness.
  # x1, x2: a second, 2-D coordinate system (x1 = day / 7, weeks; x2 = a synthetic second
  # coordinate per assessment, e.g. hours since the first assessment of the day, / 2), used only
  # to check 2-D Euclidean distances.
  set.seed(20261130)
  n <- 150
  planned <- c(14, 42, 84, 168)
  id <- sprintf("Q%03d", seq_len(n))
  arm <- sample(rep(c("control", "peer"), length.out = n))
  baseline <- round(rnorm(n, 30, 6), 1)
  day <- t(sapply(seq_len(n), function(i) planned + sample(-10:10, 4, replace = TRUE)))
  x2 <- matrix(round(runif(n * 4, 0, 8), 2), n)
  e <- t(sapply(seq_len(n), function(i) {
    S <- 36 * exp(-abs(outer(day[i, ], day[i, ], "-")) / 45)
    as.vector(t(chol(S)) %*% rnorm(4))
  }))
  mu <- outer(8 + 0.7 * baseline, c(0, -1, -2, -2.5), "+") +
    outer(arm == "peer", c(1, 2, 3, 3.5)) * 1
  y <- mu + e
  for (j in 1:3) {
    p_drop <- plogis(-2.5 - 0.08 * (y[, j] - 30))
    drop <- !is.na(y[, j]) & runif(n) < p_drop
    y[drop, (j + 1):4] <- NA
  }
  y[matrix(runif(n * 4) < 0.03, n)] <- NA
  data.frame(
    id = rep(id, each = 4), arm = rep(arm, each = 4),
    visit = rep(c("V1", "V2", "V3", "V4"), n), day = as.vector(t(day)),
    x1 = round(as.vector(t(day)) / 7, 4), x2 = as.vector(t(x2)),
    baseline = rep(baseline, each = 4), score = round(as.vector(t(y)), 4)
  )
}

if (resimulate || !file.exists("spatial_data.csv")) {
  write.csv(simulate_spatial(), "spatial_data.csv", row.names = FALSE, na = "")
}

d <- read.csv("spatial_data.csv", stringsAsFactors = FALSE)
d <- d[!is.na(d$score), ]
d$arm <- factor(d$arm)
d$visit <- factor(d$visit)
d$id <- factor(d$id)
d$planned <- c(V1 = 14, V2 = 42, V3 = 84, V4 = 168)[as.character(d$visit)]
form <- score ~ baseline + arm * visit
ctrl <- glsControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12,
                   returnObject = FALSE)

entry <- function(fit, param_name, param) {
  list(
    coef = list(term = names(coef(fit)), estimate = unname(coef(fit)),
                std_error = unname(sqrt(diag(vcov(fit))))),
    loglik = as.numeric(logLik(fit)), minus2loglik = -2 * as.numeric(logLik(fit)),
    sigma2 = fit$sigma^2, parameter = param_name, value = param,
    n_obs = nrow(d), n_subjects = length(unique(d$id))
  )
}

fits <- list()
sandwich <- function(fit) {
  out <- list()
  for (type in c("CR0", "CR2", "CR3")) {
    V <- vcovCR(fit, cluster = d$id, type = type)
    ct <- coef_test(fit, vcov = V, test = "Satterthwaite")
    out[[type]] <- list(vcov = unname(as.matrix(V)), se = unname(ct$SE),
                        df_satterthwaite = unname(ct$df_Satt))
  }
  out
}
f <- gls(form, d, correlation = corExp(form = ~ day | id), method = "REML", control = ctrl)
fits$sp_exp <- entry(f, "range", coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])

f <- gls(form, d, correlation = corGaus(form = ~ day | id), method = "REML", control = ctrl)
fits$sp_gau <- entry(f, "range", coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
# corCAR1's default start (phi = 0.2) is a flat region here (0.2^20 ~ 1e-14 at the shortest
# distances): nlme stops there at -2 l = 3230.12. Started from 0.9 it reaches the optimum, which
# is the sp_exp optimum (same model, phi = exp(-1 / range)); check_sp_pow_vs_sp_exp records it.
f <- gls(form, d, correlation = corCAR1(value = 0.9, form = ~ day | id), method = "REML",
         control = ctrl)
fits$sp_pow <- entry(f, "phi", coef(f$modelStruct$corStruct, unconstrained = FALSE)[["Phi"]])
f <- gls(form, d, correlation = corExp(form = ~ x1 + x2 | id), method = "REML", control = ctrl)
fits$sp_exp_2d <- entry(f, "range", coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
keep <- names(which(table(d$id) > 1))
d_all <- d
d <- d_all[d_all$id %in% keep, ]
d$id <- droplevels(d$id)
f <- gls(form, d, correlation = corExp(form = ~ day | id), method = "REML", control = ctrl)
fits$sp_exp_sandwich <- entry(f, "range",
                              coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
fits$sp_exp_sandwich$sandwich <- sandwich(f)
f <- gls(form, d, correlation = corExp(form = ~ x1 + x2 | id), method = "REML", control = ctrl)
fits$sp_exp_2d_sandwich <- entry(f, "range",
                                 coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
fits$sp_exp_2d_sandwich$sandwich <- sandwich(f)
d <- d_all
f <- gls(form, d, correlation = corExp(form = ~ planned | id), method = "REML", control = ctrl)
fits$sp_exp_planned <- entry(f, "range",
                             coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
f <- gls(form, d, correlation = corExp(form = ~ day | id), method = "ML", control = ctrl)
fits$sp_exp_ml <- entry(f, "range", coef(f$modelStruct$corStruct, unconstrained = FALSE)[["range"]])
# ML: SAS's SEs are (X'V^-1X)^-1 at the ML estimate; nlme's vcov() is larger by N / (N - p)
fits$sp_exp_ml$coef$std_error <- fits$sp_exp_ml$coef$std_error *
  sqrt((nrow(d) - length(coef(f))) / nrow(d))

# ---- Kenward-Roger in SAS's parameters, from the definition ------------------------------------
kenward_roger <- function(entry, corr) {
  X <- model.matrix(form, d)
  y <- d$score
  ids <- split(seq_len(nrow(d)), d$id)
  Vblock <- function(psi, rows) psi[2] * corr(abs(outer(d$day[rows], d$day[rows], "-")), psi[1])
  reml <- function(psi) {
    N <- length(y); p <- ncol(X)
    XVX <- matrix(0, p, p); XVy <- numeric(p); yVy <- 0; ld <- 0
    for (r in ids) {
      V <- Vblock(psi, r); U <- chol(V)
      Xw <- backsolve(U, X[r, , drop = FALSE], transpose = TRUE)
      yw <- backsolve(U, y[r], transpose = TRUE)
      XVX <- XVX + crossprod(Xw); XVy <- XVy + crossprod(Xw, yw); yVy <- yVy + sum(yw^2)
      ld <- ld + 2 * sum(log(diag(U)))
    }
    beta <- solve(XVX, XVy)
    -0.5 * ((N - p) * log(2 * pi) + ld + as.numeric(determinant(XVX)$modulus) +
              yVy - sum(XVy * beta))
  }
  psi <- c(entry$value, entry$sigma2)
  H <- numDeriv::hessian(reml, psi)  # numDeriv's default Richardson settings
  W <- solve(-H)
  p <- ncol(X); K <- 2
  Vinv_blocks <- list(); VinvX <- matrix(0, nrow(d), p)
  P <- replicate(K, matrix(0, p, p), simplify = FALSE)
  Q <- replicate(K, replicate(K, matrix(0, p, p), simplify = FALSE), simplify = FALSE)
  R <- Q
  Phi_inv <- matrix(0, p, p)
  for (r in ids) {
    m <- length(r)
    V <- Vblock(psi, r); Vi <- solve(V); Xr <- X[r, , drop = FALSE]
    A <- Vi %*% Xr
    Phi_inv <- Phi_inv + crossprod(Xr, A)
    f <- function(ps) as.vector(Vblock(ps, r))
    J1 <- numDeriv::jacobian(f, psi)                      # m^2 x K
    J2 <- numDeriv::jacobian(function(ps) as.vector(numDeriv::jacobian(f, ps)),
                             psi)                          # (m^2 K) x K
    dV <- lapply(1:K, function(i) matrix(J1[, i], m, m))
    d2V <- lapply(1:K, function(i) lapply(1:K, function(j)
      matrix(J2[((i - 1) * m * m + 1):(i * m * m), j], m, m)))
    for (i in 1:K) {
      P[[i]] <- P[[i]] - crossprod(A, dV[[i]] %*% A)
      for (j in 1:K) {
        Q[[i]][[j]] <- Q[[i]][[j]] + crossprod(A, dV[[i]] %*% Vi %*% dV[[j]] %*% A)
        R[[i]][[j]] <- R[[i]][[j]] + crossprod(A, ((d2V[[i]][[j]] + d2V[[j]][[i]]) / 2) %*% A)
      }
    }
  }
  Phi <- solve(Phi_inv)
  S <- matrix(0, p, p)
  for (i in 1:K) for (j in 1:K) {
    S <- S + W[i, j] * (Q[[i]][[j]] - P[[i]] %*% Phi %*% P[[j]] - R[[i]][[j]] / 4)
  }
  PhiA <- Phi + 2 * Phi %*% S %*% Phi
  Vadj <- PhiA
  attr(Vadj, "P") <- P
  attr(Vadj, "W") <- W
  I <- diag(p)
  list(
    coef = list(term = colnames(X), std_error = sqrt(diag(PhiA)),
                df = apply(I, 1, function(L) pbkrtest:::Lb_ddf(matrix(L, 1), Phi, Vadj))),
    W = W, check_loglik_vs_nlme = reml(psi) - entry$loglik,
    check_se_unadjusted_vs_nlme = max(abs(sqrt(diag(Phi)) / entry$coef$std_error - 1))
  )
}
exp_corr <- function(D, range) exp(-D / range)
gau_corr <- function(D, range) exp(-(D / range)^2)
fits$sp_exp$kenward_roger <- kenward_roger(fits$sp_exp, exp_corr)
fits$sp_gau$kenward_roger <- kenward_roger(fits$sp_gau, gau_corr)

checks <- list(
  sp_pow_minus_sp_exp_minus2loglik = fits$sp_pow$minus2loglik - fits$sp_exp$minus2loglik,
  sp_pow_phi_minus_exp_of_minus_1_over_range = fits$sp_pow$value - exp(-1 / fits$sp_exp$value)
)
out <- list(
  formula = "score ~ baseline + arm * visit", subject = "id", visit = "visit",
  factor_levels = list(arm = levels(d$arm), visit = levels(d$visit)),
  fits = fits, checks = checks,
  versions = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
                  numDeriv = as.character(packageVersion("numDeriv")),
                  pbkrtest = as.character(packageVersion("pbkrtest")),
                  clubSandwich = as.character(packageVersion("clubSandwich")),
                  jsonlite = as.character(packageVersion("jsonlite")))
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "r_spatial_nlme.json")
cat("wrote r_spatial_nlme.json\n")
