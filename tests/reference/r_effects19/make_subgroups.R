# Reference for peerstats.subgroups and the site meta-analysis (issue 19), computed with R.
# Data: si_subgroup_data.csv = the analysed post-baseline rows of the bundled synthetic trial
# `social_inclusion` (peerstats.datasets; written by the test's fixture code, see README.md).
# Model (the primary MMRM of peerstats.analyze plus the interaction):
#   sis ~ sis_baseline + site + arm * visit + <var> * arm * visit,
#   unstructured residual covariance across visits (m4, m8), REML.
# 1. nlme::gls with corSymm(~ visit_num | subject) + varIdent(~ 1 | visit) (= unstructured);
#    emmeans: arm contrasts (peer - waitlist) within each level at m8 (equal weights over site,
#    sis_baseline at its mean); estimates and SEs.
# 2. R mmrm (if built, R_LIBS=/tmp/rmmrm-lib): the same model with us(visit | subject),
#    Satterthwaite df: emmeans contrasts (df_1d) and the interaction F test via df_md on the
#    emmeans linfct of (effect in level l) - (effect in the first level) at m8.
# 3. Sites: per-site effects at m8 from the model with site * arm * visit (gls, emmeans) and
#    metafor::rma(yi, sei = se, method = "REML") on them (threshold 1e-12): tau2, I2, H2, Q, pooled
#    estimate, SE, CI, prediction interval.
suppressPackageStartupMessages({library(nlme); library(emmeans); library(jsonlite); library(metafor)})
.libPaths(c("/tmp/rmmrm-lib", .libPaths()))
has_mmrm <- suppressWarnings(requireNamespace("mmrm", quietly = TRUE))
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)
d <- read.csv("si_subgroup_data.csv", stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("waitlist", "peer"))
d$visit <- factor(d$visit, levels = c("m4", "m8"))
d$visit_num <- as.integer(d$visit)
d$site <- factor(d$site)
d$subject <- factor(d$subject)
d$gender <- factor(d$gender)
d$diagnosis <- factor(d$diagnosis)
out <- list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
            emmeans = as.character(packageVersion("emmeans")),
            metafor = as.character(packageVersion("metafor")),
            mmrm = if (has_mmrm) as.character(packageVersion("mmrm")) else NA)

fit_gls <- function(f) gls(f, data = d, method = "REML",
  correlation = corSymm(form = ~ visit_num | subject), weights = varIdent(form = ~ 1 | visit),
  control = glsControl(msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12))

tidy_con <- function(con) {
  s <- as.data.frame(summary(con, infer = c(TRUE, TRUE)))
  s
}

cat_gls <- function(var) {
  f <- as.formula(paste("sis ~ sis_baseline + site + arm * visit +", var, "* arm * visit"))
  g <- fit_gls(f)
  emm <- emmeans(g, as.formula(paste("~ arm |", var, "* visit")), mode = "df.error")
  con <- contrast(emm, "trt.vs.ctrl")
  s <- as.data.frame(con)
  s <- s[s$visit == "m8", ]
  list(level = as.character(s[[var]]), estimate = s$estimate, std_error = s$SE,
       loglik = as.numeric(logLik(g)))
}

cat_mmrm <- function(var) {
  f <- as.formula(paste("sis ~ sis_baseline + site + arm * visit +", var,
                        "* arm * visit + us(visit | subject)"))
  m <- mmrm::mmrm(f, data = d, reml = TRUE, method = "Satterthwaite")
  emm <- emmeans(m, as.formula(paste("~ arm |", var, "* visit")))
  con <- contrast(emm, "trt.vs.ctrl")
  s <- summary(con, infer = c(TRUE, TRUE))
  keep <- s$visit == "m8"
  s <- s[keep, ]
  L <- con@linfct[keep, , drop = FALSE]
  Ld <- L[-1, , drop = FALSE] - matrix(L[1, ], nrow(L) - 1, ncol(L), byrow = TRUE)
  md <- mmrm::df_md(m, Ld)
  list(level = as.character(s[[var]]), estimate = s$estimate, std_error = s$SE, df = s$df,
       ci_lower = s$lower.CL, ci_upper = s$upper.CL, p_value = s$p.value,
       interaction = list(num_df = md$num_df, den_df = md$denom_df, F = md$f_stat, p_value = md$p_val))
}

cont_mmrm <- function(var, at) {
  f <- as.formula(paste("sis ~ sis_baseline + site + arm * visit +", var,
                        "* arm * visit + us(visit | subject)"))
  m <- mmrm::mmrm(f, data = d, reml = TRUE, method = "Satterthwaite")
  emm <- emmeans(m, as.formula(paste("~ arm |", var, "* visit")), at = setNames(list(at), var))
  con <- contrast(emm, "trt.vs.ctrl")
  s <- summary(con, infer = c(TRUE, TRUE))
  keep <- s$visit == "m8"
  s <- s[keep, ]
  L <- con@linfct[keep, , drop = FALSE]
  slope <- (L[2, ] - L[1, ]) / (at[2] - at[1])
  one <- mmrm::df_1d(m, slope)
  list(at = at, estimate = s$estimate, std_error = s$SE, df = s$df, ci_lower = s$lower.CL,
       ci_upper = s$upper.CL, slope = list(estimate = one$est, std_error = one$se, df = one$df,
       p_value = one$p_val))
}

out$gls <- list(gender = cat_gls("gender"), diagnosis = cat_gls("diagnosis"))
if (has_mmrm) {
  out$mmrm <- list(gender = cat_mmrm("gender"), diagnosis = cat_mmrm("diagnosis"),
                   age = cont_mmrm("age", c(30, 38, 46.25)))
  # the overall primary-model effect at m8
  m0 <- mmrm::mmrm(sis ~ sis_baseline + site + arm * visit + us(visit | subject), data = d,
                   reml = TRUE, method = "Satterthwaite")
  s0 <- summary(contrast(emmeans(m0, ~ arm | visit), "trt.vs.ctrl"), infer = c(TRUE, TRUE))
  s0 <- s0[s0$visit == "m8", ]
  out$mmrm$overall <- list(estimate = s0$estimate, std_error = s0$SE, df = s0$df)
}

# 3. sites
gs <- fit_gls(sis ~ sis_baseline + arm * visit + site * arm * visit)
cs <- as.data.frame(contrast(emmeans(gs, ~ arm | site * visit, mode = "df.error"), "trt.vs.ctrl"))
cs <- cs[cs$visit == "m8", ]
ma <- rma(yi = cs$estimate, sei = cs$SE, method = "REML",
          control = list(threshold = 1e-12, maxiter = 1000))
pr <- predict(ma)
out$sites <- list(site = as.character(cs$site), estimate = cs$estimate, std_error = cs$SE,
  rma = list(tau2 = ma$tau2, se_tau2 = ma$se.tau2, I2 = ma$I2, H2 = ma$H2, QE = ma$QE,
             QEp = ma$QEp, estimate = as.numeric(ma$beta), std_error = ma$se,
             ci_lower = ma$ci.lb, ci_upper = ma$ci.ub, pi_lower = pr$pi.lb, pi_upper = pr$pi.ub,
             k = ma$k))
# knapp-hartung variant (test = "knha") for the t-based intervals
mk <- rma(yi = cs$estimate, sei = cs$SE, method = "REML", test = "knha",
          control = list(threshold = 1e-12, maxiter = 1000))
pk <- predict(mk)
out$sites$rma_knha <- list(std_error = mk$se, ci_lower = mk$ci.lb, ci_upper = mk$ci.ub,
                           pi_lower = pk$pi.lb, pi_upper = pk$pi.ub)
write_json(out, "subgroups_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
