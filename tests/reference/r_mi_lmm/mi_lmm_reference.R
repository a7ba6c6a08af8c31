# Reference for peerstats.missing.analyse(model=...) / Imputations.analyse(model=...):
# Rubin's rules (mice::pool, Barnard-Rubin df) over lmerTest::lmer fits of a partially nested
# linear mixed model on each completed dataset of completed.csv (SYNTHETIC; written by
# make_completed.py). Model: y ~ arm * visit + baseline + (0 + peer | group) + (1 | id), REML.
# The arm contrast at each visit is the arm coefficient with that visit as the reference level.
# dfcom: the Satterthwaite df of that coefficient in the first completed dataset (mice::pool
# takes dfcom from one analysis; peerstats takes the first set's df of each contrast).
# Run from the repository root: Rscript tests/reference/r_mi_lmm/mi_lmm_reference.R
suppressPackageStartupMessages({
  library(mice); library(lme4); library(lmerTest); library(broom.mixed); library(jsonlite)
})
here <- "tests/reference/r_mi_lmm"
d <- read.csv(file.path(here, "completed.csv"), stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("usual", "peer"))
d$id <- factor(d$id)
d$group <- factor(d$group)
m <- max(d$.imp)
out <- list(
  R = R.version.string,
  packages = list(mice = as.character(packageVersion("mice")),
                  lme4 = as.character(packageVersion("lme4")),
                  lmerTest = as.character(packageVersion("lmerTest")),
                  broom.mixed = as.character(packageVersion("broom.mixed"))),
  model = "y ~ arm * visit + baseline + (0 + peer | group) + (1 | id)",
  m = m, contrasts = list()
)
for (v in c("post", "fu3")) {
  fits <- lapply(seq_len(m), function(k) {
    dk <- d[d$.imp == k, ]
    dk$visit <- relevel(factor(dk$visit, levels = c("post", "fu3")), ref = v)
    lmer(y ~ arm * visit + baseline + (0 + peer | group) + (1 | id), data = dk, REML = TRUE)
  })
  co <- lapply(fits, function(f) summary(f)$coefficients["armpeer", ])
  dfcom <- co[[1]][["df"]]
  pl <- pool(as.mira(fits), dfcom = dfcom)
  s <- summary(pl, conf.int = TRUE)
  r <- s[s$term == "armpeer", ]
  p <- pl$pooled[pl$pooled$term == "armpeer", ]
  out$contrasts[[v]] <- list(
    visit = v, contrast = "peer - usual",
    per_set_estimate = sapply(co, function(x) x[["Estimate"]]),
    per_set_std_error = sapply(co, function(x) x[["Std. Error"]]),
    per_set_df = sapply(co, function(x) x[["df"]]),
    dfcom = dfcom,
    estimate = r$estimate, std_error = r$std.error, df = r$df, statistic = r$statistic,
    p_value = r$p.value, ci_lower = r[["2.5 %"]], ci_upper = r[["97.5 %"]],
    ubar = p$ubar, b = p$b, t = p$t, riv = p$riv, lambda = p$lambda, fmi = p$fmi
  )
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = 15, pretty = TRUE),
           file.path(here, "mi_lmm_reference.json"))
cat("wrote", file.path(here, "mi_lmm_reference.json"), "\n")
