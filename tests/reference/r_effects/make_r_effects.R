# Outside reference values for peerstats effect sizes and model comparison (issue 12).
#
# Run from this directory:   Rscript make_r_effects.R
# Reads ../r_mmrm/fev_data.csv (the FEV data of the R package mmrm, see ../r_mmrm/README.md);
# writes r_effects_reference.json.
#
# Model: FEV1 ~ FEV1_BL + ARMCD * AVISIT, nlme::gls with unstructured covariance
#   (corSymm(form = ~ VISITN | USUBJID) + varIdent(form = ~ 1 | AVISIT)), REML, rows with a
#   missing FEV1 dropped. emmeans(~ ARMCD | AVISIT, mode = "asymptotic") (z intervals).
# Effect sizes: emmeans::eff_size(emm, sigma = SD, edf = Inf, method = "revpairwise") with SD the
#   pooled within-arm SD of FEV1_BL over the analysed participants (one value each), computed
#   here with sd(); Hedges' g = J d with J = 1 - 3 / (4 (n1 + n2) - 9) (Hedges 1981;
#   Borenstein et al. 2009, eq. 4.22), n = analysed participants per arm.
# Likelihood-ratio tests: nlme::anova(m1, m2)
#   reml_cov: cs REML vs us REML (same fixed effects)
#   ml_fixed: us ML without the ARMCD:AVISIT interaction vs us ML with it
suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(jsonlite)
})
emm_options(msg.interaction = FALSE)

d <- read.csv("../r_mmrm/fev_data.csv", stringsAsFactors = TRUE)
d$AVISIT <- factor(d$AVISIT, levels = c("VIS1", "VIS2", "VIS3", "VIS4"))
d$ARMCD <- factor(d$ARMCD, levels = c("PBO", "TRT"))
a <- d[!is.na(d$FEV1), ]

us <- function(formula, method) {
  gls(formula, data = a, method = method,
      correlation = corSymm(form = ~ VISITN | USUBJID),
      weights = varIdent(form = ~ 1 | AVISIT))
}
full_reml <- us(FEV1 ~ FEV1_BL + ARMCD * AVISIT, "REML")
cs_reml <- gls(FEV1 ~ FEV1_BL + ARMCD * AVISIT, data = a, method = "REML",
               correlation = corCompSymm(form = ~ 1 | USUBJID))
full_ml <- us(FEV1 ~ FEV1_BL + ARMCD * AVISIT, "ML")
main_ml <- us(FEV1 ~ FEV1_BL + ARMCD + AVISIT, "ML")

# pooled within-arm baseline SD, one value per analysed participant
per <- a[!duplicated(a$USUBJID), ]
n_arm <- table(per$ARMCD)
v_arm <- tapply(per$FEV1_BL, per$ARMCD, var)
sd_bl <- sqrt(sum((n_arm - 1) * v_arm) / sum(n_arm - 1))

emm <- emmeans(full_reml, ~ ARMCD | AVISIT, mode = "asymptotic")
es <- summary(eff_size(emm, sigma = sd_bl, edf = Inf, method = "revpairwise"))
ct <- summary(contrast(emm, "revpairwise"), infer = TRUE)
J <- 1 - 3 / (4 * sum(n_arm) - 9)

lrt <- function(m_small, m_big) {
  t <- anova(m_small, m_big)
  list(L_ratio = t$L.Ratio[2], df = t$df[2] - t$df[1], p_value = t$`p-value`[2],
       loglik_small = as.numeric(logLik(m_small)), loglik_big = as.numeric(logLik(m_big)))
}

out <- list(
  meta = list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
              emmeans = as.character(packageVersion("emmeans")),
              data = "../r_mmrm/fev_data.csv"),
  sd_baseline = sd_bl,
  n = as.list(setNames(as.integer(n_arm), names(n_arm))),
  hedges_j = J,
  effects = lapply(seq_len(nrow(es)), function(i) list(
    visit = as.character(es$AVISIT[i]), contrast = as.character(es$contrast[i]),
    difference = ct$estimate[i], diff_lower = ct$asymp.LCL[i], diff_upper = ct$asymp.UCL[i],
    d = es$effect.size[i], d_lower = es$asymp.LCL[i], d_upper = es$asymp.UCL[i],
    g = J * es$effect.size[i], g_lower = J * es$asymp.LCL[i], g_upper = J * es$asymp.UCL[i])),
  lrt = list(reml_cov = lrt(cs_reml, full_reml), ml_fixed = lrt(main_ml, full_ml))
)
write_json(out, "r_effects_reference.json", auto_unbox = TRUE, digits = 15, pretty = TRUE)
