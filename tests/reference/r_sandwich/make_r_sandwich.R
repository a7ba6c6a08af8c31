# Outside reference values for peerstats' empirical (sandwich) covariances, between-within df and
# type II tests (issue 10, items 3, 4, 7). Run from this directory:  Rscript make_r_sandwich.R
# Reads ../sas_fev/fev_data.csv (the FEV data of the R package mmrm, 200 subjects, 537 of 800
# outcomes observed); writes r_sandwich_reference.json.
#
# Fits (REML, rows with a missing FEV1 dropped):
#   us       nlme::gls(FEV1 ~ RACE + SEX + ARMCD * AVISIT, corSymm(~ VISITN | USUBJID) +
#            varIdent(~ 1 | AVISIT))                      = unstructured MMRM
#   cs       nlme::gls(same mean, corCompSymm(~ 1 | USUBJID))  = compound symmetry
#   us_w     as us with varComb(varIdent(~1 | AVISIT), varFixed(~ INVW)), INVW = 1 / WEIGHT
#            (the weighted MMRM, SAS WEIGHT statement; see openpharma/mmrm issue 132)
#   lme_ri   nlme::lme(FEV1 ~ RACE + SEX + ARMCD * AVISIT, random = ~ 1 | USUBJID)
#   us_bl    as us with the covariate FEV1_BL: FEV1 ~ FEV1_BL + RACE + SEX + ARMCD * AVISIT
# For each: coefficients, model-based vcov, and clubSandwich::vcovCR(cluster = USUBJID) for
# CR0 (SAS EMPIRICAL), CR2 (Bell-McCaffrey) and CR3 (jackknife) with coef_test(test =
# "Satterthwaite") (Pustejovsky & Tipton 2018) and Wald_test(test = "HTZ") of the
# ARMCD:AVISIT interaction (3 rows).
# lme_ri also gives nlme's own df (summary(fit)$tTable[, "DF"]), nlme's between/within
# assignment, as one reference for df = "between-within".
# us_bl and us also give car::Anova(type = 2) (Wald chi-square, model-based vcov and CR0).
suppressPackageStartupMessages({
  library(nlme)
  library(clubSandwich)
  library(car)
  library(jsonlite)
})

fev <- read.csv("../sas_fev/fev_data.csv", stringsAsFactors = FALSE)
fev <- fev[!is.na(fev$FEV1), ]
for (v in c("RACE", "SEX", "ARMCD", "AVISIT", "USUBJID")) fev[[v]] <- factor(fev[[v]])
fev$INVW <- 1 / fev$WEIGHT
fev <- fev[order(fev$USUBJID, fev$VISITN), ]
# opt = "optim" passes msTol to optim as reltol (nlminb keeps its rel.tol 1e-10, i.e. ~3e-7 in
# -2 log-likelihood here): the REML optimum to ~1e-10 in -2 log-likelihood
ctl <- glsControl(maxIter = 500, msMaxIter = 5000, tolerance = 1e-12, msTol = 1e-15, opt = "optim")

f0 <- FEV1 ~ RACE + SEX + ARMCD * AVISIT
fits <- list(
  us = gls(f0, data = fev, correlation = corSymm(form = ~ VISITN | USUBJID),
           weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctl),
  cs = gls(f0, data = fev, correlation = corCompSymm(form = ~ 1 | USUBJID), method = "REML",
           control = ctl),
  us_w = gls(f0, data = fev, correlation = corSymm(form = ~ VISITN | USUBJID),
             weights = varComb(varIdent(form = ~ 1 | AVISIT), varFixed(~ INVW)),
             method = "REML", control = ctl),
  lme_ri = lme(f0, random = ~ 1 | USUBJID, data = fev, method = "REML",
               control = lmeControl(maxIter = 500, msMaxIter = 5000, tolerance = 1e-12, msTol = 1e-15, opt = "optim")),
  us_bl = gls(FEV1 ~ FEV1_BL + RACE + SEX + ARMCD * AVISIT, data = fev,
              correlation = corSymm(form = ~ VISITN | USUBJID),
              weights = varIdent(form = ~ 1 | AVISIT), method = "REML", control = ctl)
)

mat <- function(m) unname(lapply(seq_len(nrow(m)), function(i) unname(as.numeric(m[i, ]))))

out <- list(
  meta = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
              clubSandwich = as.character(packageVersion("clubSandwich")),
              car = as.character(packageVersion("car")), data = "../sas_fev/fev_data.csv")
)
for (nm in names(fits)) {
  fit <- fits[[nm]]
  b <- if (inherits(fit, "lme")) fixef(fit) else coef(fit)
  rec <- list(terms = names(b), coef = unname(b), vcov_model = mat(vcov(fit)),
              neg2loglik = -2 * as.numeric(logLik(fit)), n_obs = nrow(fev),
              n_subjects = length(unique(fev$USUBJID)))
  inter <- grep("^ARMCD.*:AVISIT", names(b))
  for (type in c("CR0", "CR2", "CR3")) {
    V <- vcovCR(fit, cluster = fev$USUBJID, type = type)
    ct <- coef_test(fit, vcov = V, test = "Satterthwaite")
    wt <- Wald_test(fit, constraints = constrain_zero(inter), vcov = V, test = c("HTZ", "chi-sq"),
                    tidy = TRUE)
    rec[[type]] <- list(
      vcov = mat(as.matrix(V)), se = unname(ct$SE), df_satterthwaite = unname(ct$df_Satt),
      wald_interaction = list(
        rows = inter - 1L,  # 0-based coefficient positions
        htz_F = wt$Fstat[wt$test == "HTZ"], htz_df_num = wt$df_num[wt$test == "HTZ"],
        htz_df_den = wt$df_denom[wt$test == "HTZ"],
        chisq_F = wt$Fstat[wt$test == "chi-sq"]
      )
    )
  }
  if (inherits(fit, "lme")) rec$nlme_df <- unname(summary(fit)$tTable[, "DF"])
  if (nm %in% c("us", "us_bl")) {
    a2 <- Anova(fit, type = 2)
    a2r <- Anova(fit, type = 2, vcov. = as.matrix(vcovCR(fit, cluster = fev$USUBJID, type = "CR0")))
    rec$anova_type2 <- list(term = rownames(a2), df = unname(a2$Df), chisq = unname(a2$Chisq))
    rec$anova_type2_CR0 <- list(term = rownames(a2r), df = unname(a2r$Df),
                                chisq = unname(a2r$Chisq))
  }
  out[[nm]] <- rec
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "r_sandwich_reference.json")
cat("wrote r_sandwich_reference.json\n")
