# Bootstrap arithmetic, computed in R on resamples drawn in R: for each of B = 200 resamples
# (stratified by arm, with replacement, set.seed(2026)), the case weights (times drawn) and the
# arm coefficients of lm(cost ~ arm + u0 + stratum, weights = w) and lm(qaly ~ ...); then the
# bias-corrected percentile interval (Efron & Tibshirani 1993, 14.3: z0 = qnorm(mean(t < t0)),
# limits = quantile(t, pnorm(2 z0 + qnorm(c(.025, .975))), type = 7)) of each, and of the
# incremental net benefit at 30,000 per QALY. Data: cea_synthetic.csv (synthetic).
# Run from the repository root: Rscript tests/reference/r_economics/cea_bootstrap.R
suppressPackageStartupMessages(library(jsonlite))
here <- "tests/reference/r_economics"
d <- read.csv(file.path(here, "cea_synthetic.csv"))
d$arm <- factor(d$arm, levels = c("usual", "peer"))
d$stratum <- factor(d$stratum)
set.seed(2026)
B <- 200
n <- nrow(d)
W <- matrix(0, B, n)
inc <- matrix(NA, B, 2, dimnames = list(NULL, c("cost", "effect")))
for (b in 1:B) {
  idx <- unlist(lapply(split(seq_len(n), d$arm), function(i) i[sample.int(length(i), replace = TRUE)]))
  w <- tabulate(idx, nbins = n)
  W[b, ] <- w
  inc[b, "cost"] <- coef(lm(cost ~ arm + u0 + stratum, data = d, weights = w))[["armpeer"]]
  inc[b, "effect"] <- coef(lm(qaly ~ arm + u0 + stratum, data = d, weights = w))[["armpeer"]]
}
t0 <- c(cost = coef(lm(cost ~ arm + u0 + stratum, data = d))[["armpeer"]],
        effect = coef(lm(qaly ~ arm + u0 + stratum, data = d))[["armpeer"]])
bc <- function(t, est, level = 0.95) {
  z0 <- qnorm(mean(t < est) + 0.5 * mean(t == est))
  unname(quantile(t, pnorm(2 * z0 + qnorm(c((1 - level) / 2, (1 + level) / 2))), type = 7))
}
nmb <- 30000 * inc[, "effect"] - inc[, "cost"]
nmb0 <- 30000 * t0[["effect"]] - t0[["cost"]]
out <- list(
  meta = list(R = R.version.string, note = "weights drawn in R; stats::lm with case weights"),
  weights = W, increments = unname(inc), estimate = unname(t0),
  bc_cost = bc(inc[, "cost"], t0[["cost"]]), bc_effect = bc(inc[, "effect"], t0[["effect"]]),
  nmb_wtp = 30000, bc_nmb = bc(nmb, nmb0), sd = unname(apply(inc, 2, sd)),
  prob_ce = mean(nmb > 0)
)
write_json(out, file.path(here, "cea_bootstrap.json"), digits = NA, auto_unbox = TRUE)
