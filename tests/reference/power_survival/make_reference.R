# Reference values for peerstats.design.survival (issue 17, item 5).
# Run from the repository root: Rscript tests/reference/power_survival/make_reference.R
# powerSurvEpi (CRAN, fetched from github:cran/powerSurvEpi, installed into /work/rlib):
#   numDEpi.default  - Schoenfeld (1983) number of events;
#   ssizeCT.default / powerCT.default - Freedman (1982) sample size and power;
# and the probability of an event under uniform accrual, exponential survival and exponential
# dropout by numerical integration (stats::integrate), independent of the closed form we use.
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({library(powerSurvEpi); library(jsonlite)})
out <- list()
grid <- expand.grid(hr = c(0.6, 0.7, 0.8), power = c(0.8, 0.9), p = c(0.5, 2/3))
out$schoenfeld <- lapply(seq_len(nrow(grid)), function(i) with(grid[i, ], list(
  hr = hr, power = power, p = p,
  # exact (unrounded) events: numDEpi rounds up, so we keep its formula's value too
  events_ceiling = numDEpi.default(power = power, theta = hr, p = p, rho2 = 0, alpha = 0.05),
  events = (qnorm(0.975) + qnorm(power))^2 / (log(hr)^2 * p * (1 - p)),
  power_at_200 = powerEpi.default(n = 400, theta = hr, p = p, psi = 0.5, rho2 = 0,
                                  alpha = 0.05))))
fr <- expand.grid(hr = c(0.6, 0.7), k = c(1, 2), pE = 0.3, pC = 0.4)
out$freedman <- lapply(seq_len(nrow(fr)), function(i) with(fr[i, ], list(
  hr = hr, k = k, pE = pE, pC = pC,
  ssize = unname(ssizeCT.default(power = 0.8, k = k, pE = pE, pC = pC, RR = hr, alpha = 0.05)),
  power = powerCT.default(nE = 150 * k, nC = 150, pE = pE, pC = pC, RR = hr, alpha = 0.05))))
# P(event) with accrual a (uniform), follow-up f after accrual, hazard lambda, dropout eta
pevent <- function(lambda, eta, a, f) {
  integrate(function(entry) {
    s <- a + f - entry     # potential follow-up
    lambda / (lambda + eta) * (1 - exp(-(lambda + eta) * s))
  }, 0, a, rel.tol = 1e-12)$value / a
}
pe <- expand.grid(median = c(6, 12), hr = c(1, 0.7), dropout = c(0, 0.1), a = 12, f = 12)
out$pevent <- lapply(seq_len(nrow(pe)), function(i) with(pe[i, ], list(
  median = median, hr = hr, dropout_hazard = dropout, accrual = a, follow_up = f,
  p = pevent(log(2) / median * hr, dropout, a, f))))
out$versions <- list(R = R.version.string,
                     powerSurvEpi = as.character(packageVersion("powerSurvEpi")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/power_survival/reference.json")
