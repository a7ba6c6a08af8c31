# Reference for peerstats.mediation with mixed (random site intercept) linear models (issue 19):
# R mediation (github:kosukeimai/mediation, in /work/rlib) with lme4::lmer fits, REML, on
# si_mediation_wide.csv: the bundled synthetic trial `social_inclusion` in wide form (mediator
# empowerment at m4, outcome SIS at m8, baselines of both as covariates, site as random intercept;
# complete cases; models chosen so that both site variances are positive: mediator
# empowerment_m4 ~ peer + sis_baseline + (1 | site), outcome sis_m8 ~ peer + empowerment_m4 +
# (1 | site)). Quasi-Bayesian, 5000 simulations. Also the lmer fixed effects and site SDs.
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({library(mediation); library(lme4); library(jsonlite)})
d <- read.csv("si_mediation_wide.csv", stringsAsFactors = FALSE)
mm <- lmer(empowerment_m4 ~ peer + sis_baseline + (1 | site), data = d, REML = TRUE)
mo <- lmer(sis_m8 ~ peer + empowerment_m4 + (1 | site), data = d, REML = TRUE)
set.seed(1919)
m <- mediate(mm, mo, treat = "peer", mediator = "empowerment_m4", sims = 5000)
out <- list(R = R.version.string, mediation = as.character(packageVersion("mediation")),
            lme4 = as.character(packageVersion("lme4")),
            d0 = m$d0, d1 = m$d1, z0 = m$z0, z1 = m$z1, d_avg = m$d.avg, z_avg = m$z.avg,
            tau = m$tau.coef, d0_ci = unname(m$d0.ci), d1_ci = unname(m$d1.ci),
            z0_ci = unname(m$z0.ci), z1_ci = unname(m$z1.ci), d_avg_ci = unname(m$d.avg.ci),
            z_avg_ci = unname(m$z.avg.ci), tau_ci = unname(m$tau.ci), sims = m$sims,
            fixef_mediator = as.list(fixef(mm)), fixef_outcome = as.list(fixef(mo)),
            product_of_coefficients = unname(fixef(mm)["peer"] * fixef(mo)["empowerment_m4"]),
            site_sd = c(attr(VarCorr(mm)$site, "stddev"), attr(VarCorr(mo)$site, "stddev")))
write_json(out, "mediation_mixed_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
