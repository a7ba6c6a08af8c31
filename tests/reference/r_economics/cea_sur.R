# Seemingly unrelated regression of costs and QALYs (systemfit, method = "SUR", its defaults:
# residual covariance from the OLS residuals with the "geomean" degrees-of-freedom convention,
# sigma_ij = e_i'e_j / sqrt((n - k_i)(n - k_j))), the incremental net monetary benefit and its SE
# from the SUR covariance: var(NMB) = wtp^2 V_EE + V_CC - 2 wtp V_CE.
# Data: cea_synthetic.csv (synthetic, make_cea_data.py) and menss.csv (the MenSS pilot trial
# data shipped with the R package missingHE, Gabrio et al.; Bailey et al. 2016 HTA 20(91);
# complete cases of cost and QALYs), and glick_clintrial_cea.csv (the example trial of Glick,
# Doshi, Sonnad & Polsky, Economic Evaluation in Clinical Trials, OUP 2007, 500 participants,
# as shipped in the R package ceaR, github bmckay/ceaR data/clintrial_cea.rda; the book's
# website http://www.uphs.upenn.edu/dgimhsr/eeinct_multiv.htm), with the baseline cost in the
# cost equation and the baseline QALY in the QALY equation (different regressors: SUR != OLS).
# Run from the repository root: Rscript tests/reference/r_economics/cea_sur.R
suppressPackageStartupMessages({library(systemfit); library(jsonlite)})
here <- "tests/reference/r_economics"
wtp <- c(0, 1000, 20000, 30000, 50000)

fit_sur <- function(d, rhs, rhs_effect = rhs) {
  eqs <- list(cost = as.formula(paste("cost ~", rhs)),
              effect = as.formula(paste("effect ~", rhs_effect)))
  f <- systemfit(eqs, method = "SUR", data = d)
  b <- coef(f); V <- vcov(f)
  ic <- grep("^cost_arm", names(b)); ie <- grep("^effect_arm", names(b))
  inc <- c(cost = unname(b[ic]), effect = unname(b[ie]))
  Vi <- V[c(ic, ie), c(ic, ie)]
  nmb <- wtp * inc[["effect"]] - inc[["cost"]]
  nmb_se <- sqrt(wtp^2 * Vi[2, 2] + Vi[1, 1] - 2 * wtp * Vi[1, 2])
  # large-sample normal intervals and P(NMB > 0) (Willan, Briggs & Hoch 2004)
  z <- qnorm(0.975)
  list(n = nrow(d), coefficients = as.list(b), incremental = as.list(inc),
       std_error = as.list(sqrt(diag(Vi))), covariance = unname(Vi),
       residual_covariance = unname(f$residCov), residual_covariance_used = unname(f$residCovEst),
       wtp = wtp, nmb = nmb, nmb_se = nmb_se,
       nmb_ci_lower = nmb - z * nmb_se, nmb_ci_upper = nmb + z * nmb_se,
       prob_ce = pnorm(nmb / nmb_se),
       inc_ci_lower = unname(inc - z * sqrt(diag(Vi))), inc_ci_upper = unname(inc + z * sqrt(diag(Vi))),
       df_residual = unname(sapply(f$eq, function(e) e$df.residual)))
}

syn <- read.csv(file.path(here, "cea_synthetic.csv"))
syn$arm <- factor(syn$arm, levels = c("usual", "peer"))
syn$effect <- syn$qaly
syn$stratum <- factor(syn$stratum)
men <- read.csv(file.path(here, "menss.csv"))
men <- men[complete.cases(men[, c("e", "c")]), ]
men$arm <- factor(men$trt, levels = c(1, 2))
men$cost <- men$c; men$effect <- men$e
gl <- read.csv(file.path(here, "glick_clintrial_cea.csv"))
gl$arm <- factor(gl$treat, levels = c(0, 1))
gl$effect <- gl$qaly
out <- list(
  meta = list(R = R.version.string, systemfit = as.character(packageVersion("systemfit"))),
  synthetic = fit_sur(syn, "arm + u0 + stratum"),
  menss = fit_sur(men, "arm + u.0"),
  glick = fit_sur(gl, "arm + blcost", "arm + blqaly"),
  glick_shared = fit_sur(gl, "arm + blcost + blqaly + dissev + race + male")
)
write_json(out, file.path(here, "cea_sur.json"), digits = NA, auto_unbox = TRUE)
