# Outside reference for peerstats.compare(convention = "r") (issue 20.7): AIC and BIC of
# nlme::anova(m1, m2) (nlme's AIC/BIC: k = all parameters; BIC uses log(N - p) under REML,
# log(N) under ML, N the analysed observations).
#
# Run from this directory:   Rscript make_r_compare.R
# Data: ../r_mmrm/fev_data.csv (FEV data of R mmrm). Models as ../r_effects/make_r_effects.R:
#   reml_cov: FEV1 ~ FEV1_BL + ARMCD * AVISIT, REML, compound symmetry vs unstructured;
#   ml_fixed: FEV1 ~ FEV1_BL + ARMCD + AVISIT vs FEV1 ~ FEV1_BL + ARMCD * AVISIT, ML,
#             unstructured; plus nobs of each logLik (the N of BIC).
suppressPackageStartupMessages({
  library(nlme)
  library(jsonlite)
})
d <- read.csv("../r_mmrm/fev_data.csv", stringsAsFactors = TRUE)
d$AVISIT <- factor(d$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
d$ARMCD <- factor(d$ARMCD, levels = c("PBO", "TRT"))
a <- d[!is.na(d$FEV1), ]
us <- function(formula, method) {
  gls(formula, data = a, method = method,
      correlation = corSymm(form = ~ VISITN | USUBJID),
      weights = varIdent(form = ~ 1 | AVISIT),
      control = glsControl(tolerance = 1e-12, msTol = 1e-14, maxIter = 1000, msMaxIter = 1000))
}
full_reml <- us(FEV1 ~ FEV1_BL + ARMCD * AVISIT, "REML")
cs_reml <- gls(FEV1 ~ FEV1_BL + ARMCD * AVISIT, data = a, method = "REML",
               correlation = corCompSymm(form = ~ 1 | USUBJID))
full_ml <- us(FEV1 ~ FEV1_BL + ARMCD * AVISIT, "ML")
main_ml <- us(FEV1 ~ FEV1_BL + ARMCD + AVISIT, "ML")
tab <- function(m1, m2) {
  t <- anova(m1, m2)
  list(df = t$df, AIC = t$AIC, BIC = t$BIC, logLik = t$logLik,
       nobs = c(attr(logLik(m1), "nobs"), attr(logLik(m2), "nobs")))
}
out <- list(
  meta = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
              data = "../r_mmrm/fev_data.csv"),
  reml_cov = tab(cs_reml, full_reml),
  ml_fixed = tab(main_ml, full_ml)
)
write_json(out, "r_compare_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("wrote r_compare_reference.json\n")
