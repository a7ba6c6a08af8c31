# Reference for the pipeline's `model: glmm` (issue 16.5): the partially nested GLMMs of the
# bundled SYNTHETIC peer_recovery trial, on the rows the pipeline analysed (written by the test
# data step into readmission.csv / bed_days.csv), fitted by glmmTMB (Laplace).
# Run: Rscript make_r_pipeline_glmm.R  (writes r_pipeline_glmm.json)
suppressPackageStartupMessages({library(glmmTMB); library(jsonlite)})
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
prep <- function(f) {
  d <- read.csv(file.path(here, f), stringsAsFactors = FALSE)
  d$arm <- factor(d$arm, levels = c("usual", "peer"))
  d$site <- factor(d$site)
  d$dgroup[d$dgroup == ""] <- NA
  d$dgroup <- ifelse(is.na(d$dgroup), "none", d$dgroup)  # rows with delivered = 0: no effect
  d$dgroup <- factor(d$dgroup)
  d
}
out <- list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")))
fitinfo <- function(m) {
  cf <- summary(m)$coefficients$cond
  list(terms = rownames(cf), estimate = unname(cf[, 1]), std_error = unname(cf[, 2]),
       loglik = as.numeric(logLik(m)),
       sd = unname(attr(VarCorr(m)$cond$dgroup, "stddev")),
       theta = if (family(m)$family == "nbinom2") sigma(m) else NA)
}
r <- prep("readmission.csv")
m1 <- glmmTMB(y ~ arm + site + (0 + delivered | dgroup), data = r, family = binomial)
out$readmission <- fitinfo(m1)
b <- prep("bed_days.csv")
m2 <- glmmTMB(y ~ arm + site + (0 + delivered | dgroup) + offset(log(exposure)), data = b,
              family = nbinom2)
out$bed_days <- fitinfo(m2)
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(here, "r_pipeline_glmm.json"))
