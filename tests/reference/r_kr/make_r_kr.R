# Outside reference for Kenward-Roger variants and prediction standard errors (issue 20.8).
#
# Run from this directory (R mmrm 0.3.18 built from /work/shared/reference/r-mmrm with build.sh):
#   R_LIBS=/tmp/rmmrm-lib Rscript make_r_kr.R
# Data: ../sas_fev/fev_data.csv (R mmrm fev_data) and bcva_data.rda (R mmrm bcva_data,
# written here from bcva_data.rda, copied unchanged from openpharma/mmrm data/, Apache-2.0).
# Writes r_kr_reference.json:
#   kr: for each model, the TRT - PBO (FEV) / TRT - CTL (BCVA) LSMEANS difference via
#       emmeans-free contrast (coef of ARMCD) under method = "Kenward-Roger" with
#       vcov = "Kenward-Roger" (mmrm's default KR) and vcov = "Kenward-Roger-Linear";
#   predict: for FEV1 ~ ARMCD * AVISIT + us(AVISIT | USUBJID):
#       mmrm:::h_get_prediction's conditional variance ("var": confidence variance plus
#       Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om, at theta_hat) for every row, conditional on the
#       observed rows (newdata = fev) and marginal (newdata = fev with FEV1 set to NA);
#       and predict(interval = "prediction", nsim = 20000) (adds theta_hat's variability by
#       simulation, seed 20).
# nlminb at a tight tolerance as in ../r_predict/make_r_predict.R.
suppressPackageStartupMessages({
  library(mmrm)
  library(jsonlite)
})
fev <- read.csv("../sas_fev/fev_data.csv", stringsAsFactors = FALSE)
fev$ARMCD <- factor(fev$ARMCD, levels = c("PBO", "TRT"))
fev$AVISIT <- factor(fev$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
fev$USUBJID <- factor(fev$USUBJID, levels = unique(fev$USUBJID))
load("bcva_data.rda")
bcva <- as.data.frame(bcva_data)
write.csv(bcva, "bcva_data.csv", row.names = FALSE)

tight_mmrm <- function(...) {
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

kr_one <- function(formula, data, term) {
  out <- list()
  for (v in c("Kenward-Roger", "Kenward-Roger-Linear")) {
    fit <- tight_mmrm(formula, data = data, method = "Kenward-Roger", vcov = v)
    cf <- summary(fit)$coefficients
    out[[v]] <- list(
      estimate = unname(cf[term, "Estimate"]), std_error = unname(cf[term, "Std. Error"]),
      df = unname(cf[term, "df"]), neg2loglik = deviance(fit),
      nlminb_rel_tol = attr(fit, "rel_tol")
    )
  }
  out
}

res <- list(kr = list())
for (cov in c("us", "cs", "ar1", "csh", "ar1h")) {
  f <- as.formula(sprintf("FEV1 ~ ARMCD + %s(AVISIT | USUBJID)", cov))
  res$kr[[paste0("fev_", cov)]] <- kr_one(f, fev, "ARMCDTRT")
}
bcva$ARMCD <- factor(bcva$ARMCD, levels = c("CTL", "TRT"))
res$kr$bcva_us <- kr_one(BCVA_CHG ~ ARMCD * AVISIT + us(AVISIT | USUBJID), bcva, "ARMCDTRT")
res$bcva_levels <- list(AVISIT = levels(bcva$AVISIT), ARMCD = levels(bcva$ARMCD))

fit <- tight_mmrm(FEV1 ~ ARMCD * AVISIT + us(AVISIT | USUBJID), data = fev)
tmb_data <- function(nd) {
  td <- mmrm:::h_mmrm_tmb_data(
    fit$formula_parts, nd, weights = rep(1, nrow(nd)), reml = TRUE, singular = "keep",
    drop_visit_levels = FALSE, allow_na_response = TRUE, drop_levels = FALSE,
    xlev = component(fit, "xlev"), contrasts = component(fit, "contrasts")
  )
  td
}
plug_in <- function(nd) {
  td <- tmb_data(nd)
  pr <- mmrm:::h_get_prediction(td, fit$theta_est, fit$beta_est, component(fit, "beta_vcov"))
  p <- pr$prediction
  ord <- match(row.names(td$full_frame), row.names(nd))
  out_fit <- out_var <- out_conf <- rep(NA_real_, nrow(nd))
  out_fit[ord] <- p[, "fit"]; out_var[ord] <- p[, "var"]; out_conf[ord] <- p[, "conf_var"]
  list(fit = out_fit, var = out_var, conf_var = out_conf)
}
nd_marg <- fev
nd_marg$FEV1 <- NA_real_
set.seed(20)
sim <- predict(fit, newdata = fev, conditional = TRUE, interval = "prediction", se.fit = TRUE,
               nsim = 20000L)
res$predict <- list(
  neg2loglik = deviance(fit),
  conditional = plug_in(fev),
  marginal = plug_in(nd_marg),
  simulated_prediction_se = unname(sim[, "se"]),
  nsim = 20000L
)
res$versions <- list(
  R = R.version.string,
  mmrm = as.character(packageVersion("mmrm")),
  TMB = as.character(packageVersion("TMB"))
)
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = FALSE, na = "null"),
           "r_kr_reference.json")
cat("wrote r_kr_reference.json\n")
