# Outside reference values for peerstats.lmm (issue 4), computed with R.
#
# Run from this directory:   Rscript make_r_lmm.R [--resimulate]
# Writes (data only if absent or with --resimulate): pn_trial_data.csv, pn_cross_data.csv,
# singular_data.csv; always: r_lmm_reference.json. Fits read the data back from the CSV files.
#
# Data (simulated, fixed seeds):
#   pn_trial  two-arm peer-support trial, 6 sites, 240 participants (120 control, 120 peer in 15
#             delivery groups of 8), three post-baseline visits, baseline covariate, random subject
#             intercept and slope, delivery-group effect in the peer arm only, larger residual SD in
#             the peer arm, monotone MAR dropout.
#   pn_cross  one post-treatment outcome, 100 control + 100 peer in 12 groups (the classic
#             partially nested design of Candlish et al. 2018).
#   singular  as pn_cross with no group effect; the seed is the first from 1 upwards for which
#             lme4 estimates the group variance as exactly 0 (a singular fit).
#
# Coding of the partially nested term: `peer` is a 0/1 indicator of the peer arm and `group` the
# delivery group; every control participant gets a group id of their own ("C-<id>"), never NA
# (lme4 and nlme would drop rows with an NA grouping factor, i.e. the whole control arm) and never
# one shared "control" level. Because peer = 0 for controls, the (0 + peer | group) column is zero
# for them and the likelihood is the same for any non-missing coding of their group; singletons are
# used because they are also correct if someone writes (1 | group) by mistake.
#
# Models (REML unless stated):
#   ri_subject        lmer  qpr ~ baseline + arm * visit + (1 | id)
#   ri_subject_site   lmer  qpr ~ baseline + arm * visit + (1 | id) + (1 | site)
#   pn_homo           lmer  qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group)
#   pn_hetero         lme   qpr ~ baseline + arm * visit, random = list(group = ~ 0 + peer,
#                           id = ~ 1), weights = varIdent(form = ~ 1 | arm)
#   ri_slope          lmer  qpr ~ baseline + arm * time + (1 + time | id)
#   cross_pn_homo     lmer  qpr ~ baseline + arm + (0 + peer | group)            (pn_cross data)
#   cross_pn_hetero   lme   qpr ~ baseline + arm, random = ~ 0 + peer | group,
#                           weights = varIdent(form = ~ 1 | arm)                (pn_cross data)
#   singular          lmer  qpr ~ baseline + arm + (0 + peer | group)            (singular data)
#   pn_hetero_homo_check  lme version of pn_homo (must equal lmer: checks the lme coding)
#
# Degrees of freedom:
#   lmer fits: lmerTest summary(ddf = "Satterthwaite"); Kenward-Roger twice: "kenward_roger" in the
#   convention of SAS and R mmrm (W = inverse observed information, see reml_generic.R) and
#   "kenward_roger_pbkrtest" = lmerTest summary(ddf = "Kenward-Roger") with the adjusted standard
#   errors sqrt(diag(pbkrtest::vcovAdj(fit))) (W = inverse expected information).
#   lme fits (arm-specific residual variances; lmerTest/pbkrtest cannot take lme objects):
#   Satterthwaite from its definition, df = 2 (L C L')^2 / (g' A g) with A the inverse observed
#   REML information in the variance parameters and g the gradient of L C L', by numDeriv on the
#   REML likelihood written out below for V = sum_k theta_k V_k; Kenward-Roger by pbkrtest's own
#   internals (pbkrtest:::vcovAdj_internal and pbkrtest:::Lb_ddf) fed with Sigma = V(theta-hat)
#   and G = {V_k}, with either W (see above). The same code run on the lmer fits reproduces lmerTest and pbkrtest
#   (recorded under "check_generic_vs_lmerTest" for each lmer fit), and at theta-hat it
#   reproduces the REML log-likelihood of nlme/lme4 ("check_loglik").

suppressPackageStartupMessages({
  library(nlme)
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
resimulate <- "--resimulate" %in% args

# ----------------------------------------------------------------------------------------------
# 1. Data
# ----------------------------------------------------------------------------------------------
simulate_pn_trial <- function() {
  set.seed(44044)
  n_ctrl <- 120; n_groups <- 15; per_group <- 8
  n <- n_ctrl + n_groups * per_group
  id <- sprintf("Q%03d", seq_len(n))
  arm <- rep(c("control", "peer"), c(n_ctrl, n_groups * per_group))
  group <- c(paste0("C-", id[seq_len(n_ctrl)]),
             rep(sprintf("G%02d", seq_len(n_groups)), each = per_group))
  site <- sample(sprintf("S%d", 1:6), n, replace = TRUE)
  baseline <- round(rnorm(n, 32, 9), 1)
  site_eff <- setNames(rnorm(6, 0, 1.5), sprintf("S%d", 1:6))[site]
  g_eff <- setNames(rnorm(n_groups, 0, 2.5), sprintf("G%02d", seq_len(n_groups)))
  grp_eff <- ifelse(arm == "peer", g_eff[group], 0)
  b0 <- rnorm(n, 0, 4); b1 <- rnorm(n, 0, 2.5)
  time <- c(0, 1, 2)
  rows <- expand.grid(v = 1:3, i = seq_len(n))
  i <- rows$i; v <- rows$v
  mu <- 8 + 0.7 * baseline[i] + c(0, 1, 1.5)[v] + (arm[i] == "peer") * c(2, 3, 4)[v]
  sd_res <- ifelse(arm[i] == "peer", 5, 3.5)
  y <- mu + site_eff[i] + grp_eff[i] + b0[i] + b1[i] * time[v] + rnorm(length(i), 0, sd_res)
  ymat <- matrix(y, ncol = 3, byrow = TRUE)
  for (j in 1:2) {
    drop <- !is.na(ymat[, j]) & runif(n) < plogis(-2.3 - 0.07 * (ymat[, j] - 32))
    ymat[drop, (j + 1):3] <- NA
  }
  data.frame(id = id[i], site = site[i], arm = arm[i], peer = as.integer(arm[i] == "peer"),
             group = group[i], visit = sprintf("V%d", v), visit_num = v, time = time[v],
             baseline = baseline[i], qpr = round(as.vector(t(ymat)), 4))
}

simulate_pn_cross <- function(seed, group_sd) {
  set.seed(seed)
  n_ctrl <- 100; n_groups <- 12
  size <- rep(c(8, 9), length.out = n_groups)
  size[n_groups] <- 100 - sum(size[-n_groups])
  n <- n_ctrl + sum(size)
  id <- sprintf("X%03d", seq_len(n))
  arm <- rep(c("control", "peer"), c(n_ctrl, sum(size)))
  group <- c(paste0("C-", id[seq_len(n_ctrl)]), rep(sprintf("G%02d", seq_len(n_groups)), size))
  baseline <- round(rnorm(n, 30, 8), 1)
  g_eff <- setNames(rnorm(n_groups, 0, group_sd), sprintf("G%02d", seq_len(n_groups)))
  y <- 6 + 0.75 * baseline + 4 * (arm == "peer") + ifelse(arm == "peer", g_eff[group], 0) +
    rnorm(n, 0, ifelse(arm == "peer", 7, 5))
  data.frame(id = id, arm = arm, peer = as.integer(arm == "peer"), group = group,
             baseline = baseline, qpr = round(y, 4))
}

if (resimulate || !file.exists("pn_trial_data.csv")) {
  write.csv(simulate_pn_trial(), "pn_trial_data.csv", row.names = FALSE, na = "")
}
if (resimulate || !file.exists("pn_cross_data.csv")) {
  write.csv(simulate_pn_cross(2018, 2.5), "pn_cross_data.csv", row.names = FALSE, na = "")
}
if (resimulate || !file.exists("singular_data.csv")) {
  for (seed in 1:200) {
    d <- simulate_pn_cross(seed, 0)
    fit <- suppressMessages(lmer(qpr ~ baseline + arm + (0 + peer | group), data = d))
    if (getME(fit, "theta")[1] == 0) break
  }
  message("singular data: seed ", seed)
  write.csv(d, "singular_data.csv", row.names = FALSE, na = "")
}

read_data <- function(file, factors) {
  raw <- read.csv(file, stringsAsFactors = FALSE)
  d <- raw[!is.na(raw$qpr), ]
  for (fc in factors) d[[fc]] <- factor(d[[fc]])
  list(raw = raw, d = d)
}

# ----------------------------------------------------------------------------------------------
# 2. Generic REML for V = sum_k theta_k V_k: Satterthwaite and KR for lme fits, KR in the SAS
#    convention for all fits (see reml_generic.R)
# ----------------------------------------------------------------------------------------------
source("reml_generic.R")

indicator <- function(f) {
  f <- factor(f)
  m <- matrix(0, length(f), nlevels(f)); m[cbind(seq_along(f), as.integer(f))] <- 1
  m
}
zzt <- function(Z) tcrossprod(Z)

# ----------------------------------------------------------------------------------------------
# 3. Result extraction
# ----------------------------------------------------------------------------------------------
coef_table <- function(est, se, df) {
  t <- est / se
  list(term = names(est), estimate = unname(est), std_error = unname(se), df = unname(df),
       statistic = unname(t), p_value = unname(2 * pt(-abs(t), df)),
       ci_lower = unname(est - qt(0.975, df) * se), ci_upper = unname(est + qt(0.975, df) * se))
}

blups_lmer <- function(fit, levels_wanted) {
  re <- ranef(fit)
  out <- list()
  for (g in names(re)) {
    r <- re[[g]]
    keep <- intersect(levels_wanted[[g]], rownames(r))
    out[[g]] <- list(level = keep, terms = colnames(r),
                     values = unname(as.matrix(r[keep, , drop = FALSE])))
  }
  out
}

lmer_result <- function(fit, d, levels_wanted, Vk_theta = NULL, note = NULL) {
  est <- fixef(fit)
  sat <- summary(fit, ddf = "Satterthwaite")$coefficients
  kr <- summary(fit, ddf = "Kenward-Roger")$coefficients
  vadj <- as.matrix(pbkrtest::vcovAdj(fit))
  vc <- as.data.frame(VarCorr(fit))
  res <- list(
    source = "lme4::lmer (REML) + lmerTest + pbkrtest",
    formula = paste(deparse(formula(fit), width.cutoff = 500L), collapse = " "),
    note = note,
    n_obs = nrow(d),
    loglik = as.numeric(logLik(fit)), minus2loglik = -2 * as.numeric(logLik(fit)),
    singular = isSingular(fit),
    variance_components = list(group = vc$grp, term = vc$var1, term2 = vc$var2,
                               variance = vc$vcov, sd = vc$sdcor),
    satterthwaite = coef_table(est, sat[, "Std. Error"], sat[, "df"]),
    kenward_roger_pbkrtest = coef_table(est, sqrt(diag(vadj)), kr[, "df"]),
    blups = blups_lmer(fit, levels_wanted)
  )
  if (!is.null(Vk_theta)) {
    X <- getME(fit, "X"); y <- getME(fit, "y")
    g <- generic_inference(X, y, Vk_theta$Vk, Vk_theta$theta)
    res$kenward_roger <- coef_table(est, g$kr_obs_se, g$kr_obs_df)
    res$check_generic_vs_lmerTest <- list(
      loglik = g$loglik - res$loglik,
      max_rel_sat_df = max(abs(g$sat_df / sat[, "df"] - 1)),
      max_rel_kr_df_expected_info = max(abs(g$kr_exp_df / kr[, "df"] - 1)),
      max_rel_kr_se_expected_info = max(abs(g$kr_exp_se / sqrt(diag(vadj)) - 1)),
      max_gradient = g$max_gradient, newton_step_rel = g$newton_step_rel)
  }
  res
}

lme_result <- function(fit, d, X, Vk, theta, levels_wanted, note = NULL) {
  est <- fixef(fit)
  g <- generic_inference(X, d$qpr, Vk, theta)
  vc_names <- names(theta)
  blups <- list()
  re <- ranef(fit)
  if (is.data.frame(re)) re <- setNames(list(re), names(fit$groups)[1])
  for (gname in names(re)) {
    r <- re[[gname]]
    rn <- rownames(r)
    lev <- sub(".*/", "", rn)   # nested levels are "group/id": keep the innermost
    keep <- which(lev %in% levels_wanted[[gname]])
    blups[[gname]] <- list(level = lev[keep], terms = colnames(r),
                           values = unname(as.matrix(r[keep, , drop = FALSE])))
  }
  list(
    source = "nlme::lme (REML); df from the definition (numDeriv) and pbkrtest internals",
    call = paste(deparse(fit$call, width.cutoff = 500L), collapse = " "),
    note = note,
    n_obs = nrow(d),
    loglik = as.numeric(logLik(fit)), minus2loglik = -2 * as.numeric(logLik(fit)),
    singular = FALSE,
    variance_parameters = as.list(theta),
    check_loglik = g$loglik - as.numeric(logLik(fit)),
    check_max_abs_beta = max(abs(g$beta - est)),
    check_max_gradient = g$max_gradient,
    check_newton_step_rel = g$newton_step_rel,
    satterthwaite = coef_table(est, sqrt(diag(vcov(fit))), g$sat_df),
    kenward_roger = coef_table(est, g$kr_obs_se, g$kr_obs_df),
    kenward_roger_pbkrtest = coef_table(est, g$kr_exp_se, g$kr_exp_df),
    blups = blups
  )
}

# ----------------------------------------------------------------------------------------------
# 4. Fits
# ----------------------------------------------------------------------------------------------
ctl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
lctl <- lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-10,
                   niterEM = 100)
fits <- list()
data_info <- list()

# ---- pn_trial
pt <- read_data("pn_trial_data.csv", c("site", "arm", "visit", "group", "id"))
d <- pt$d
data_info$pn_trial <- list(file = "pn_trial_data.csv", n_rows = nrow(pt$raw), n_obs = nrow(d),
                           n_subjects = nlevels(droplevels(d$id)),
                           factor_levels = list(site = levels(d$site), arm = levels(d$arm),
                                                visit = levels(d$visit)))
want <- list(id = levels(d$id)[c(1:3, 121:123)], site = levels(d$site),
             group = sprintf("G%02d", 1:5))
Zid <- indicator(d$id); Zsite <- indicator(d$site); Zgrp <- indicator(d$group) * d$peer
I <- diag(nrow(d))

f1 <- lmer(qpr ~ baseline + arm * visit + (1 | id), data = d, REML = TRUE, control = ctl)
vc <- as.data.frame(VarCorr(f1))
fits$ri_subject <- c(list(dataset = "pn_trial"), lmer_result(f1, d, want,
  list(Vk = list(zzt(Zid), I), theta = vc$vcov)))
fits$ri_subject$icc <- list(id = vc$vcov[1] / sum(vc$vcov))

f2 <- lmer(qpr ~ baseline + arm * visit + (1 | id) + (1 | site), data = d, REML = TRUE,
           control = ctl)
vc <- as.data.frame(VarCorr(f2))
th <- setNames(vc$vcov, vc$grp)
fits$ri_subject_site <- c(list(dataset = "pn_trial"), lmer_result(f2, d, want,
  list(Vk = list(zzt(Zid), zzt(Zsite), I), theta = th[c("id", "site", "Residual")])))
fits$ri_subject_site$icc <- list(id = th[["id"]] / sum(th), site = th[["site"]] / sum(th))

f3 <- lmer(qpr ~ baseline + arm * visit + (1 | id) + (0 + peer | group), data = d, REML = TRUE,
           control = ctl)
vc <- as.data.frame(VarCorr(f3))
th <- setNames(vc$vcov, vc$grp)
fits$pn_homo <- c(list(dataset = "pn_trial"), lmer_result(f3, d, want,
  list(Vk = list(zzt(Zid), zzt(Zgrp), I), theta = th[c("id", "group", "Residual")])))
fits$pn_homo$icc <- list(group = th[["group"]] / sum(th))
fits$pn_homo$icc_note <- paste("group ICC in the peer arm: var(group) / (var(group) + var(id) +",
                               "var(residual))")

X <- model.matrix(qpr ~ baseline + arm * visit, d)
f3b <- lme(qpr ~ baseline + arm * visit, random = list(group = pdDiag(~ 0 + peer), id = ~ 1),
           data = d, method = "REML", control = lctl)
fits$pn_homo_lme_check <- list(
  dataset = "pn_trial", note = "lme coding of pn_homo; must equal the lmer fit",
  minus2loglik = -2 * as.numeric(logLik(f3b)),
  max_rel_beta_vs_lmer = max(abs(fixef(f3b) / fixef(f3) - 1)),
  loglik_diff_vs_lmer = as.numeric(logLik(f3b)) - as.numeric(logLik(f3)))

f4 <- lme(qpr ~ baseline + arm * visit, random = list(group = pdDiag(~ 0 + peer), id = ~ 1),
          weights = varIdent(form = ~ 1 | arm), data = d, method = "REML", control = lctl)
s <- f4$sigma
ratio <- coef(f4$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
# full precision (VarCorr() of an lme fit is rounded text): pdMatrix is relative to sigma^2
vg <- s^2 * as.matrix(f4$modelStruct$reStruct$group)[1, 1]
vid <- s^2 * as.matrix(f4$modelStruct$reStruct$id)[1, 1]
res_var <- s^2 * ratio^2
Rc <- diag(as.numeric(d$arm == "control")); Rp <- diag(as.numeric(d$arm == "peer"))
theta <- c(id = vid, group = vg, residual_control = res_var[["control"]],
           residual_peer = res_var[["peer"]])
fits$pn_hetero <- c(list(dataset = "pn_trial"),
  lme_result(f4, d, X, list(zzt(Zid), zzt(Zgrp), Rc, Rp), theta, want))
fits$pn_hetero$variance_components <- list(
  group = c("id", "group", "Residual", "Residual"),
  term = c("(Intercept)", "peer", "arm=control", "arm=peer"),
  variance = unname(theta), sd = unname(sqrt(theta)))
fits$pn_hetero$icc <- list(group = vg / (vg + vid + res_var[["peer"]]))
fits$pn_hetero$icc_note <- paste("group ICC in the peer arm: var(group) / (var(group) + var(id) +",
                                 "residual variance of the peer arm)")

f5 <- lmer(qpr ~ baseline + arm * time + (1 + time | id), data = d, REML = TRUE, control = ctl)
vc <- as.data.frame(VarCorr(f5))
Z0 <- Zid; Z1 <- Zid * d$time
fits$ri_slope <- c(list(dataset = "pn_trial"), lmer_result(f5, d, want,
  list(Vk = list(zzt(Z0), Z0 %*% t(Z1) + Z1 %*% t(Z0), zzt(Z1), I),
       theta = c(vc$vcov[1], vc$vcov[3], vc$vcov[2], vc$vcov[4]))))

# ---- pn_cross
pc <- read_data("pn_cross_data.csv", c("arm", "group", "id"))
d <- pc$d
data_info$pn_cross <- list(file = "pn_cross_data.csv", n_rows = nrow(pc$raw), n_obs = nrow(d),
                           factor_levels = list(arm = levels(d$arm)))
want <- list(group = sprintf("G%02d", 1:5))
Zgrp <- indicator(d$group) * d$peer
I <- diag(nrow(d))
f6 <- lmer(qpr ~ baseline + arm + (0 + peer | group), data = d, REML = TRUE, control = ctl)
vc <- as.data.frame(VarCorr(f6))
fits$cross_pn_homo <- c(list(dataset = "pn_cross"), lmer_result(f6, d, want,
  list(Vk = list(zzt(Zgrp), I), theta = vc$vcov)))
fits$cross_pn_homo$icc <- list(group = vc$vcov[1] / sum(vc$vcov))

X <- model.matrix(qpr ~ baseline + arm, d)
f7 <- lme(qpr ~ baseline + arm, random = list(group = pdDiag(~ 0 + peer)),
          weights = varIdent(form = ~ 1 | arm), data = d, method = "REML", control = lctl)
s <- f7$sigma
ratio <- coef(f7$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
vg <- s^2 * as.matrix(f7$modelStruct$reStruct$group)[1, 1]
res_var <- s^2 * ratio^2
Rc <- diag(as.numeric(d$arm == "control")); Rp <- diag(as.numeric(d$arm == "peer"))
theta <- c(group = vg, residual_control = res_var[["control"]],
           residual_peer = res_var[["peer"]])
fits$cross_pn_hetero <- c(list(dataset = "pn_cross"),
  lme_result(f7, d, X, list(zzt(Zgrp), Rc, Rp), theta, want))
fits$cross_pn_hetero$variance_components <- list(
  group = c("group", "Residual", "Residual"), term = c("peer", "arm=control", "arm=peer"),
  variance = unname(theta), sd = unname(sqrt(theta)))
fits$cross_pn_hetero$icc <- list(group = vg / (vg + res_var[["peer"]]))

# ---- singular
sg <- read_data("singular_data.csv", c("arm", "group", "id"))
d <- sg$d
data_info$singular <- list(file = "singular_data.csv", n_rows = nrow(sg$raw), n_obs = nrow(d),
                           factor_levels = list(arm = levels(d$arm)))
f8 <- lmer(qpr ~ baseline + arm + (0 + peer | group), data = d, REML = TRUE, control = ctl)
fits$singular <- c(list(dataset = "singular"), lmer_result(f8, d, list(group = sprintf("G%02d", 1:3)),
  note = paste("group variance estimated exactly 0 (lme4 theta = 0, isSingular TRUE); the fixed",
               "effects equal OLS. lmerTest/pbkrtest df at the boundary are recorded but not",
               "used by the tests.")))
ols <- lm(qpr ~ baseline + arm, data = d)
fits$singular$ols_check <- list(max_abs_beta_diff = max(abs(coef(ols) - fixef(f8))),
                                residual_df = ols$df.residual)

out <- list(
  generated_by = "tests/reference/r_lmm/make_r_lmm.R",
  r_version = R.version.string,
  packages = sapply(c("nlme", "lme4", "lmerTest", "pbkrtest", "numDeriv", "jsonlite"),
                    function(p) as.character(packageVersion(p)), simplify = FALSE),
  datasets = data_info,
  fits = fits
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null"),
           "r_lmm_reference.json")
message("wrote r_lmm_reference.json")
