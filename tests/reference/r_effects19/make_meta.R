# Reference for peerstats.effects.meta_analysis with tau^2 > 0: metafor's BCG vaccine data
# (dat.bcg, Colditz et al. 1994; the example of ?rma), log risk ratios from escalc(measure = "RR"),
# rma(method = "REML") with threshold 1e-12, z and Knapp-Hartung tests, predict() intervals.
suppressPackageStartupMessages({library(metafor); library(jsonlite)})
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
one <- function(test) {
  m <- rma(yi, vi, data = dat, method = "REML", test = test,
           control = list(threshold = 1e-12, maxiter = 1000))
  p <- predict(m)
  list(tau2 = m$tau2, se_tau2 = m$se.tau2, I2 = m$I2, H2 = m$H2, QE = m$QE, QEp = m$QEp,
       estimate = as.numeric(m$beta), std_error = m$se, ci_lower = m$ci.lb, ci_upper = m$ci.ub,
       pi_lower = p$pi.lb, pi_upper = p$pi.ub, p_value = m$pval, k = m$k)
}
out <- list(R = R.version.string, metafor = as.character(packageVersion("metafor")),
            data = "metafor dat.bcg, escalc(measure = 'RR')", yi = as.numeric(dat$yi),
            vi = as.numeric(dat$vi), z = one("z"), knha = one("knha"))
write_json(out, "meta_bcg_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
