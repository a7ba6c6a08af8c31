# Reference for peerstats.mediation (issue 19): R package `mediation` (Imai, Keele, Tingley,
# Yamamoto), built from github:kosukeimai/mediation into /work/rlib, on its public JOBS II data
# (data(jobs), the example of the package vignette "Causal Mediation Analysis Using R", Imai et
# al.). Writes jobs.csv (the columns used) and mediation_reference.json.
# Run: Rscript make_mediation.R  (from this folder)
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({library(mediation); library(jsonlite)})
data(jobs)
d <- jobs[, c("treat", "econ_hard", "sex", "age", "job_seek", "depress2", "work1")]
d$work1 <- as.integer(d$work1 == levels(jobs$work1)[2])  # glm: first level is failure
write.csv(d, "jobs.csv", row.names = FALSE)

summ <- function(m) {
  list(d0 = m$d0, d1 = m$d1, z0 = m$z0, z1 = m$z1, d_avg = m$d.avg, z_avg = m$z.avg,
       tau = m$tau.coef, n0 = m$n0, n1 = m$n1, n_avg = m$n.avg,
       d0_ci = unname(m$d0.ci), d1_ci = unname(m$d1.ci), z0_ci = unname(m$z0.ci),
       z1_ci = unname(m$z1.ci), d_avg_ci = unname(m$d.avg.ci), z_avg_ci = unname(m$z.avg.ci),
       tau_ci = unname(m$tau.ci), n_avg_ci = unname(m$n.avg.ci), sims = m$sims)
}
out <- list(R = R.version.string, mediation = as.character(packageVersion("mediation")),
            source = "R mediation::mediate / medsens on data(jobs); vignette models of Imai et al.")

# 1. continuous mediator, continuous outcome (vignette section 'Estimation of causal mediation effects')
set.seed(2014)
b <- lm(job_seek ~ treat + econ_hard + sex + age, data = jobs)
c <- lm(depress2 ~ treat + job_seek + econ_hard + sex + age, data = jobs)
m1 <- mediate(b, c, sims = 20000, treat = "treat", mediator = "job_seek")
out$contcont <- summ(m1)
out$contcont$product_of_coefficients <- unname(coef(b)["treat"] * coef(c)["job_seek"])
out$contcont$direct_coefficient <- unname(coef(c)["treat"])
set.seed(2015)
m1b <- mediate(b, c, boot = TRUE, sims = 2000, treat = "treat", mediator = "job_seek")
out$contcont_boot <- summ(m1b)

# 2. treatment-mediator interaction (vignette: 'treat:job_seek', INT)
set.seed(2016)
ci <- lm(depress2 ~ treat + job_seek + treat:job_seek + econ_hard + sex + age, data = jobs)
m2 <- mediate(b, ci, sims = 20000, treat = "treat", mediator = "job_seek")
out$interaction <- summ(m2)

# 3. binary outcome, logistic (the vignette uses probit for work1; logit here)
set.seed(2017)
cb <- glm(work1 ~ treat + job_seek + econ_hard + sex + age, family = binomial("logit"), data = jobs)
m3 <- mediate(b, cb, sims = 20000, treat = "treat", mediator = "job_seek")
out$binary_outcome <- summ(m3)

# 4. sensitivity (medsens) for model 1: rho grid 0.001; err.cr.d is the grid rho nearest ACME = 0
set.seed(2018)
m1s <- mediate(b, c, sims = 100, treat = "treat", mediator = "job_seek")
s <- medsens(m1s, rho.by = 0.01, effect.type = "indirect", sims = 100)
out$medsens <- list(rho = s$rho, d0 = as.numeric(s$d0), err_cr_d = s$err.cr.d, rho_by = 0.01,
                    r2star_thresh = s$R2star.d.thresh, r2tilde_thresh = s$R2tilde.d.thresh)
write_json(out, "mediation_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
