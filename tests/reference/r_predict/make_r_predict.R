# Outside reference values for predictions and residuals of peerstats.mmrm (issue 10, item 8).
#
# Run from this directory (R mmrm built from ../../../../shared/reference/r-mmrm with build.sh):
#   R_LIBS=/tmp/rmmrm-lib Rscript make_r_predict.R
# Reads ../sas_fev/fev_data.csv (the FEV data of R mmrm, 200 subjects x 4 visits, 263 missing
# outcomes) and writes r_predict_reference.json with, for each model below:
#   mmrm::mmrm, REML:
#     predict(fit, newdata = fev, conditional = TRUE, interval = "confidence", se.fit = TRUE)
#       -> fit and se for every row of the data (observed rows: the value, se 0; missing rows:
#          the conditional mean given the subject's observed visits, se from cov(beta_hat))
#     predict(fit, newdata = fev, conditional = FALSE, interval = "confidence", se.fit = TRUE)
#     fitted(fit); residuals(fit, type = "response" | "pearson" | "normalized")
#   nlme::gls with the same covariance (us: corSymm + varIdent; ar1: corAR1), REML:
#     residuals(type = "response" | "pearson" | "normalized") and fitted(), as a second source.
# Models: "us" FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID);
#         "ar1_group" FEV1 ~ ARMCD * AVISIT + ar1(AVISIT | ARMCD / USUBJID) (covariance per arm);
#         "us_weighted" as "us" with weights = WEIGHT (residuals only: R mmrm's predict ignores
#         the weights).
# R mmrm is run with nlminb at a tight tolerance (TIGHT below): its default L-BFGS-B stops about
# 5e-6 above the minimum of -2 log-likelihood on these data, which moves the covariance estimates
# (and so the conditional means) in their 4th digit; at a tight tolerance (the tightest of
# 1e-15 ... 1e-10 at which nlminb reports convergence, stored as nlminb_rel_tol) R mmrm's -2 REML log-likelihood
# is 3386.44987116233 for "us", the optimum.
# Row names of the data are 1..800; mmrm's fitted/residuals are for the 537 rows with an
# observed outcome, in the order of the data (it is sorted by subject and visit).
suppressPackageStartupMessages({
  library(mmrm)
  library(nlme)
  library(jsonlite)
})
fev <- read.csv("../sas_fev/fev_data.csv", stringsAsFactors = FALSE)
fev$ARMCD <- factor(fev$ARMCD, levels = c("PBO", "TRT"))
fev$AVISIT <- factor(fev$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
fev$RACE <- factor(fev$RACE)
fev$SEX <- factor(fev$SEX)
fev$USUBJID <- factor(fev$USUBJID, levels = unique(fev$USUBJID))
fev$visit_num <- as.integer(fev$AVISIT)
obs <- !is.na(fev$FEV1)

one <- function(fit, weighted = FALSE) {
  out <- list(
    neg2loglik = deviance(fit),
    nlminb_rel_tol = attr(fit, "rel_tol"),
    coefficients = unname(coef(fit)),
    fitted = unname(fitted(fit)),
    rows = which(obs),  # 1-based rows of the data with an observed outcome
    residuals_response = unname(residuals(fit, type = "response")),
    residuals_pearson = unname(residuals(fit, type = "pearson")),
    residuals_normalized = unname(residuals(fit, type = "normalized"))
  )
  if (!weighted) {
    pc <- predict(fit, newdata = fev, conditional = TRUE, interval = "confidence", se.fit = TRUE)
    pm <- predict(fit, newdata = fev, conditional = FALSE, interval = "confidence", se.fit = TRUE)
    out$predict_conditional <- list(fit = unname(pc[, "fit"]), se = unname(pc[, "se"]))
    out$predict_marginal <- list(fit = unname(pm[, "fit"]), se = unname(pm[, "se"]))
  }
  out
}

tight_mmrm <- function(...) {
  # the tightest relative tolerance at which nlminb reports convergence
  for (tol in c(1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10)) {
    ctl <- list(rel.tol = tol, x.tol = 1e-15, eval.max = 10000, iter.max = 10000)
    fit <- tryCatch(mmrm(..., optimizer = "nlminb", optimizer_control = ctl),
                    error = function(e) NULL)
    if (!is.null(fit)) {
      attr(fit, "rel_tol") <- tol
      return(fit)
    }
  }
  stop("nlminb did not converge")
}
res <- list()
f_us <- FEV1 ~ RACE + SEX + ARMCD * AVISIT + us(AVISIT | USUBJID)
res$us <- one(tight_mmrm(f_us, data = fev, reml = TRUE))
res$ar1_group <- one(tight_mmrm(FEV1 ~ ARMCD * AVISIT + ar1(AVISIT | ARMCD / USUBJID), data = fev,
                          reml = TRUE))
res$us_weighted <- one(tight_mmrm(f_us, data = fev, weights = fev$WEIGHT, reml = TRUE), weighted = TRUE)

d <- fev[obs, ]
g_us <- gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, data = d, method = "REML",
            correlation = corSymm(form = ~ visit_num | USUBJID),
            weights = varIdent(form = ~ 1 | AVISIT),
            control = glsControl(tolerance = 1e-12, msTol = 1e-14, maxIter = 1000,
                                 msMaxIter = 1000))
res$gls_us <- list(
  neg2loglik = -2 * as.numeric(logLik(g_us)),
  coefficients = unname(coef(g_us)),
  fitted = unname(fitted(g_us)),
  residuals_response = unname(residuals(g_us, type = "response")),
  residuals_pearson = unname(residuals(g_us, type = "pearson")),
  residuals_normalized = unname(residuals(g_us, type = "normalized"))
)
res$versions <- list(
  R = R.version.string,
  mmrm = as.character(packageVersion("mmrm")),
  nlme = as.character(packageVersion("nlme"))
)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = FALSE), "r_predict_reference.json")
cat("wrote r_predict_reference.json\n")
