# Outside reference values from the R package mmrm (0.3.18, openpharma, Apache-2.0; source in
# /work/shared/reference/r-mmrm/, built with its build.sh) for peerstats.mmrm's spatial
# structures and homogeneous antedependence "ad" (issue 10.5, 10.6): estimates, SEs,
# Satterthwaite df, a multi-row F test (Satterthwaite), -2 REML log-likelihood, covariance.
#
# Run from this directory:   R_LIBS=/tmp/rmmrm-lib Rscript make_r_spatial_mmrm.R
# Reads spatial_data.csv (SYNTHETIC, written by make_r_spatial.R) and ../r_mmrm/fev_data.csv
# (the FEV data of the SAS listings, from the R package mmrm). Writes r_spatial_mmrm.json.
#
# Fits (REML, Satterthwaite df):
#   spatial / sp_exp     score ~ baseline + arm * visit + sp_exp(day | id)
#                        mmrm's sp_exp is sigma^2 rho^d (rho = plogis(theta_2)): SAS SP(POW), the
#                        same model as SAS SP(EXP) with range = -1 / log(rho); df are invariant
#                        to the parameterisation at the optimum, so these df check both.
#   spatial / sp_gau     ... + sp_gau(x1 | id): sigma^2 rho^(d^2) = SAS SP(GAU), range = (-1/log rho)^(1/2),
#                        in weeks (x1 = day / 7): in days every mmrm optimizer fails (rho^(d^2)
#                        with d^2 up to ~3e4 is flat at mmrm's start), so this is a separate check
#                        of peerstats' sp_gau with time = "x1"
#   spatial / sp_exp_2d  ... + sp_exp(x1, x2 | id): Euclidean distance in (x1, x2)
#   spatial / sp_exp_group  ... + sp_exp(day | arm / id): separate sigma^2, rho per arm
#   spatial / ad         ... + ad(visit | id)   homogeneous antedependence over V1..V4
#   fev / ad             FEV1 ~ RACE + SEX + ARMCD * AVISIT + ad(AVISIT | USUBJID)
#   fev / ad_group       ... + ad(AVISIT | ARMCD / USUBJID): separate parameters per arm
# Each entry: coef (term, estimate, std_error, df), minus2loglik, theta (mmrm's), covariance
# (visits x visits; for spatial fits: sigma^2 and rho), and ftest: the Satterthwaite F test of
# the arm x visit interaction coefficients (mmrm::df_md), with the coefficient names it tests.
suppressPackageStartupMessages({
  library(mmrm)
  library(jsonlite)
})

sp <- read.csv("spatial_data.csv", stringsAsFactors = FALSE)
sp <- sp[!is.na(sp$score), ]
sp$arm <- factor(sp$arm); sp$visit <- factor(sp$visit); sp$id <- factor(sp$id)
fev <- read.csv("../r_mmrm/fev_data.csv", stringsAsFactors = FALSE)
fev <- fev[!is.na(fev$FEV1), ]
for (v in c("RACE", "SEX", "ARMCD", "AVISIT", "USUBJID")) fev[[v]] <- factor(fev[[v]])

# nlminb (tighter: on FEV ad_group mmrm's default first choice L-BFGS-B stops 5e-6 above the
# optimum of -2 l, with df 3e-4 and covariances 1e-3 off); mmrm's default list if nlminb fails.
# The optimizer used is recorded per fit.
ctrl_nlminb <- mmrm_control(method = "Satterthwaite",
                            optimizers = mmrm:::h_get_optimizers("nlminb"))
ctrl_default <- mmrm_control(method = "Satterthwaite")
fit_mmrm <- function(formula, data) {
  f <- try(mmrm(formula, data = data, reml = TRUE, control = ctrl_nlminb), silent = TRUE)
  if (inherits(f, "try-error")) f <- mmrm(formula, data = data, reml = TRUE, control = ctrl_default)
  f
}

entry <- function(fit, interaction_prefix) {
  s <- summary(fit)$coefficients
  beta <- component(fit, "beta_est")
  names_int <- grep(":", names(beta), value = TRUE)
  L <- matrix(0, length(names_int), length(beta))
  for (i in seq_along(names_int)) L[i, match(names_int[i], names(beta))] <- 1
  ft <- df_md(fit, L)
  list(
    coef = list(term = rownames(s), estimate = unname(s[, "Estimate"]),
                std_error = unname(s[, "Std. Error"]), df = unname(s[, "df"])),
    minus2loglik = -2 * as.numeric(logLik(fit)),
    theta = unname(component(fit, "theta_est")),
    ftest = list(terms = names_int, num_df = ft$num_df, denom_df = ft$denom_df,
                 statistic = ft$f_stat, p_value = ft$p_val),
    converged = component(fit, "convergence") == 0,
    optimizer = component(fit, "optimizer")
  )
}

out <- list(datasets = list(
  spatial = list(file = "spatial_data.csv", formula = "score ~ baseline + arm * visit",
                 subject = "id", visit = "visit", fits = list()),
  fev = list(file = "../r_mmrm/fev_data.csv", formula = "FEV1 ~ RACE + SEX + ARMCD * AVISIT",
             subject = "USUBJID", visit = "AVISIT", fits = list())
))
fit_sp <- function(cov) {
  f <- as.formula(paste("score ~ baseline + arm * visit +", cov))
  fit_mmrm(f, sp)
}
f <- fit_sp("sp_exp(day | id)")
e <- entry(f); th <- e$theta
e$sigma2 <- exp(th[1]); e$rho_pow <- plogis(th[2]); e$range_exp <- -1 / log(plogis(th[2]))
out$datasets$spatial$fits$sp_exp <- e
f <- fit_sp("sp_gau(x1 | id)")
e <- entry(f); th <- e$theta
e$sigma2 <- exp(th[1]); e$range_gau <- sqrt(-1 / log(plogis(th[2])))
out$datasets$spatial$fits$sp_gau <- e
f <- fit_sp("sp_exp(x1, x2 | id)")
e <- entry(f); th <- e$theta
e$sigma2 <- exp(th[1]); e$range_exp <- -1 / log(plogis(th[2]))
out$datasets$spatial$fits$sp_exp_2d <- e
f <- fit_sp("sp_exp(day | arm / id)")
e <- entry(f); th <- e$theta  # per arm: (log sigma, logit rho)? see theta_by_group below
e$theta_by_group <- split(th, rep(levels(sp$arm), each = length(th) / nlevels(sp$arm)))
out$datasets$spatial$fits$sp_exp_group <- e
f <- fit_sp("ad(visit | id)")
e <- entry(f); e$covariance <- unname(as.matrix(VarCorr(f)))
out$datasets$spatial$fits$ad <- e

f <- fit_mmrm(FEV1 ~ RACE + SEX + ARMCD * AVISIT + ad(AVISIT | USUBJID), fev)
e <- entry(f); e$covariance <- unname(as.matrix(VarCorr(f)))
out$datasets$fev$fits$ad <- e
f <- fit_mmrm(FEV1 ~ RACE + SEX + ARMCD * AVISIT + ad(AVISIT | ARMCD / USUBJID), fev)
e <- entry(f)
vc <- VarCorr(f)
e$covariance_by_group <- lapply(vc, function(m) unname(as.matrix(m)))
out$datasets$fev$fits$ad_group <- e

out$versions <- list(R = R.version.string, mmrm = as.character(packageVersion("mmrm")),
                     TMB = as.character(packageVersion("TMB")),
                     jsonlite = as.character(packageVersion("jsonlite")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "r_spatial_mmrm.json")
cat("wrote r_spatial_mmrm.json\n")
