# Reference for the bundled peer_recovery example's time to first psychiatric admission
# (issue 17; SYNTHETIC data): cause-specific Cox model (death and moving abroad censored),
# Efron ties, robust variance by delivery group (controls: clusters of one), as the pipeline's
# `model: cox, vcov: cluster`. Run from the repository root:
#   Rscript tests/reference/r_pipeline_tte/make_r_pipeline_tte.R
suppressPackageStartupMessages({library(survival); library(jsonlite)})
p <- read.csv("src/peerstats/datasets/data/peer_recovery/participants.csv",
              stringsAsFactors = FALSE, na.strings = "")
p <- p[p$randomised == 1 & !is.na(p$admission_days) & !is.na(p$admission_status), ]
p$arm <- factor(p$arm, levels = c("usual", "peer"))
p$site <- factor(p$site)
p$event <- as.integer(p$admission_status == 1)
p$cluster <- ifelse(is.na(p$group), paste0("s:", p$id), paste0("g:", p$group))
m <- coxph(Surv(admission_days, event) ~ arm + site, data = p, ties = "efron",
           cluster = cluster)
s <- summary(m)$coefficients
out <- list(R = R.version.string, survival = as.character(packageVersion("survival")),
            n = nrow(p), events = sum(p$event), terms = rownames(s),
            estimate = unname(s[, "coef"]), robust_se = unname(s[, "robust se"]),
            naive_se = unname(s[, "se(coef)"]), loglik = m$loglik[2],
            km_median = NA)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/r_pipeline_tte/r_pipeline_tte.json")
