# Reference for the MMRM engine's subject path (issue 22.2): R mmrm on the real BCVA data of
# the mmrm package (benchmarks/data/bcva_data.csv; Apache-2.0, artificial data, 1,000 subjects x
# 10 visits, 107 missingness patterns). Run from the repository root:
#   R_LIBS=/work/rlib Rscript tests/reference/r_mmrm_bcva/make_bcva.R
suppressPackageStartupMessages({library(mmrm); library(emmeans); library(jsonlite)})
d <- read.csv("benchmarks/data/bcva_data.csv", stringsAsFactors = TRUE)
d$USUBJID <- factor(d$USUBJID)
d$AVISIT <- factor(d$AVISIT)
fit <- mmrm(BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID), data = d,
            method = "Satterthwaite", reml = TRUE)
co <- summary(fit)$coefficients
ct <- as.data.frame(pairs(emmeans(fit, ~ ARMCD | AVISIT), reverse = TRUE))
out <- list(
  source = "R mmrm on mmrm::bcva_data (benchmarks/data/bcva_data.csv)",
  formula = "BCVA_CHG ~ BCVA_BL + RACE + ARMCD * AVISIT + us(AVISIT | USUBJID)",
  R = paste(R.version$major, R.version$minor, sep = "."),
  mmrm = as.character(packageVersion("mmrm")),
  emmeans = as.character(packageVersion("emmeans")),
  converged = component(fit, "convergence") == 0,
  coef_names = rownames(co),
  estimate = unname(co[, "Estimate"]),
  std_error = unname(co[, "Std. Error"]),
  df = unname(co[, "df"]),
  neg2loglik = -2 * as.numeric(logLik(fit)),
  covariance = unname(VarCorr(fit)),
  contrast_visit = as.character(ct$AVISIT),
  contrast_estimate = ct$estimate,
  contrast_se = ct$SE,
  contrast_df = ct$df
)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/r_mmrm_bcva/r_mmrm_bcva.json")
