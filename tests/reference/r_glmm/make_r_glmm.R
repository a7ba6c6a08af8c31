# Outside reference values for peerstats.glmm (issue 16), computed with R (lme4, glmmTMB, pscl,
# MASS). Run from this directory:  Rscript make_r_glmm.R
# Writes the data sets it uses as CSV (public teaching data from R packages, and synthetic data
# simulated here with fixed seeds) and r_glmm_reference.json.
#
# Conventions recorded with every fit:
#   glmer: estimates at the Laplace (nAGQ = 1) or adaptive Gauss-Hermite (nAGQ = k) optimum;
#          standard errors = sqrt(diag(vcov(fit))), which by default (calc.derivs = TRUE,
#          use.hessian = TRUE) is the beta block of the inverse of the finite-difference Hessian
#          of the deviance over (theta, beta), times 2.
#   glmmTMB: Laplace, exact (automatic-differentiation) Hessian over all parameters; SE from
#          sdreport's joint precision.
#   glm / glm.nb / zeroinfl / hurdle: maximum likelihood, Wald SEs.
suppressPackageStartupMessages({
  library(lme4); library(glmmTMB); library(pscl); library(MASS); library(jsonlite)
  library(HSAUR3)
})
options(digits = 15)

coef_block <- function(est, se, names) {
  list(term = names, estimate = unname(est), std_error = unname(se))
}
glmer_block <- function(fit) {
  s <- summary(fit)$coefficients
  vc <- as.data.frame(VarCorr(fit))
  list(coef = coef_block(s[, 1], s[, 2], rownames(s)),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit),
       theta = unname(getME(fit, "theta")),
       varcomp = list(grp = vc$grp, var1 = vc$var1, vcov = vc$vcov, sdcor = vc$sdcor),
       nAGQ = fit@devcomp$dims[["nAGQ"]])
}
tmb_block <- function(fit) {
  s <- summary(fit)$coefficients
  out <- list(coef = coef_block(s$cond[, 1], s$cond[, 2], rownames(s$cond)),
              loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit))
  if (!is.null(s$zi)) out$zero_coef <- coef_block(s$zi[, 1], s$zi[, 2], rownames(s$zi))
  vc <- VarCorr(fit)$cond
  if (length(vc)) out$varcomp <- lapply(vc, function(m) as.numeric(m))
  if (family(fit)$family %in% c("nbinom2", "truncated_nbinom2")) out$theta <- sigma(fit)
  out
}
glm_block <- function(fit) {
  s <- summary(fit)$coefficients
  out <- list(coef = coef_block(s[, 1], s[, 2], rownames(s)),
              loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit))
  if (!is.null(fit$theta)) { out$theta <- fit$theta; out$theta_se <- fit$SE.theta }
  out
}
pscl_block <- function(fit) {
  s <- summary(fit)$coefficients
  out <- list(coef = coef_block(s$count[, 1], s$count[, 2], rownames(s$count)),
              zero_coef = coef_block(s$zero[, 1], s$zero[, 2], rownames(s$zero)),
              loglik = as.numeric(logLik(fit)))
  if (!is.null(fit$theta)) out$theta <- unname(fit$theta)
  out$coef$term <- sub("^Log\\(theta\\)$", "Log(theta)", out$coef$term)
  out
}

ref <- list(R = R.version.string,
            packages = list(lme4 = as.character(packageVersion("lme4")),
                            glmmTMB = as.character(packageVersion("glmmTMB")),
                            pscl = as.character(packageVersion("pscl")),
                            MASS = as.character(packageVersion("MASS")),
                            Matrix = as.character(packageVersion("Matrix")),
                            TMB = as.character(packageVersion("TMB")),
                            HSAUR3 = as.character(packageVersion("HSAUR3"))))

## ---- cbpp (lme4): incidence out of size, herd intercept ---------------------------------
data(cbpp, package = "lme4")
cb <- cbpp; cb$prop <- cb$incidence / cb$size
write.csv(cb, "cbpp.csv", row.names = FALSE)
f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
ref$cbpp_laplace <- glmer_block(glmer(f, data = cbpp, family = binomial))
ref$cbpp_agq9 <- glmer_block(glmer(f, data = cbpp, family = binomial, nAGQ = 9))
ref$cbpp_agq25 <- glmer_block(glmer(f, data = cbpp, family = binomial, nAGQ = 25))
ref$cbpp_probit <- glmer_block(glmer(f, data = cbpp, family = binomial(link = "probit")))
ref$cbpp_tmb <- tmb_block(glmmTMB(f, data = cbpp, family = binomial))
ref$cbpp_glm_cloglog <- glm_block(glm(cbind(incidence, size - incidence) ~ period, data = cbpp,
                                      family = binomial(link = "cloglog")))

## ---- toenail (HSAUR3): onycholysis, patient intercept ------------------------------------
data(toenail, package = "HSAUR3")
te <- toenail
te$y <- as.integer(te$outcome == "moderate or severe")
te$treat <- ifelse(te$treatment == "terbinafine", "terbinafine", "itraconazole")
write.csv(te[, c("patientID", "y", "treat", "time", "visit")], "toenail.csv", row.names = FALSE)
# the model of lme4 issue #289 (https://github.com/lme4/lme4/issues/289), where SAS, glmmML and
# glmmADMB agree on the Laplace optimum and glmer's Laplace stops slightly apart from it
ft <- y ~ treat + visit + (1 | patientID)
ref$toenail_laplace_glmer <- glmer_block(glmer(ft, data = te, family = binomial))
ref$toenail_tmb <- tmb_block(glmmTMB(ft, data = te, family = binomial))
ref$toenail_agq20 <- glmer_block(glmer(ft, data = te, family = binomial, nAGQ = 20))
ref$toenail_glm <- glm_block(glm(y ~ treat * time, data = te, family = binomial))
# SAS PROC GLIMMIX / NLMIXED Laplace values quoted by B. Bolker in lme4 issue #289
ref$toenail_sas_issue289 <- list(source = "https://github.com/lme4/lme4/issues/289",
  RE_sd = 4.708440, estimate = c(-1.070200, -0.7005000, -0.9126000), loglik = -626.1650,
  term = c("(Intercept)", "treatterbinafine", "visit"))

## ---- Salamanders (glmmTMB): NB2 with a site intercept -------------------------------------
data(Salamanders, package = "glmmTMB")
sal <- Salamanders[, c("site", "mined", "spp", "count", "cover")]
write.csv(sal, "salamanders.csv", row.names = FALSE)
ref$sal_nb2_tmb <- tmb_block(glmmTMB(count ~ mined + cover + (1 | site), data = sal,
                                     family = nbinom2))
ref$sal_pois_tmb <- tmb_block(glmmTMB(count ~ mined + cover + (1 | site), data = sal,
                                      family = poisson))
ref$sal_pois_glmer <- glmer_block(glmer(count ~ mined + cover + (1 | site), data = sal,
                                        family = poisson))

## ---- synthetic counts with exposure (offset), NB2 + subject intercept ---------------------
set.seed(20161)
n_subj <- 150; n_vis <- 3
d <- expand.grid(visit = 1:n_vis, id = 1:n_subj)
d$arm <- ifelse(d$id <= n_subj / 2, "control", "peer")
d$days <- round(runif(nrow(d), 60, 180))
b <- rnorm(n_subj, 0, 0.6)
mu <- exp(-4 + 0.4 * (d$arm == "control") + 0.1 * d$visit + b[d$id]) * d$days
d$beddays <- rnbinom(nrow(d), size = 1.3, mu = mu)
d$logdays <- log(d$days)
write.csv(d, "counts_offset.csv", row.names = FALSE)
ref$counts_nb2_offset_tmb <- tmb_block(glmmTMB(beddays ~ arm + visit + offset(logdays) + (1 | id),
                                               data = d, family = nbinom2))
ref$counts_pois_offset_glmer <- glmer_block(glmer(beddays ~ arm + visit + (1 | id),
                                                  offset = logdays, data = d, family = poisson))
ref$counts_pois_offset_tmb <- tmb_block(glmmTMB(beddays ~ arm + visit + offset(logdays) + (1 | id),
                                                 data = d, family = poisson))
ref$counts_nb2_glm_tmb <- tmb_block(glmmTMB(beddays ~ arm + visit + offset(logdays), data = d,
                                            family = nbinom2))
# glm.nb: standard errors from the expected information of beta at theta fixed (a different
# convention from the joint observed Hessian of glmmTMB / peerstats); estimates and theta agree
ref$counts_glmnb_offset <- glm_block(glm.nb(beddays ~ arm + visit + offset(logdays), data = d))
ref$counts_pois_glm_offset <- glm_block(glm(beddays ~ arm + visit + offset(logdays), data = d,
                                            family = poisson))

## ---- bioChemists (pscl): zero-inflated and hurdle ----------------------------------------
data(bioChemists, package = "pscl")
bc <- bioChemists
write.csv(bc, "biochemists.csv", row.names = FALSE)
fz <- art ~ fem + mar + kid5 + phd + ment
ref$bc_zinb_int <- pscl_block(zeroinfl(art ~ fem + mar + kid5 + phd + ment | 1, data = bc,
                                       dist = "negbin"))
ref$bc_zip <- pscl_block(zeroinfl(art ~ fem + mar + kid5 + phd + ment | fem + ment, data = bc,
                                  dist = "poisson"))
ref$bc_hurdle_nb <- pscl_block(hurdle(art ~ fem + mar + kid5 + phd + ment | fem + ment,
                                      data = bc, dist = "negbin"))
ref$bc_hurdle_pois <- pscl_block(hurdle(art ~ fem + mar + kid5 + phd + ment | fem + ment,
                                        data = bc, dist = "poisson"))
ref$bc_zinb_tmb <- tmb_block(glmmTMB(fz, ziformula = ~ 1, data = bc, family = nbinom2))

## ---- synthetic zero-inflated bed-days (structural zeros), no random effects ------------
set.seed(16023)
nz <- 600
zi <- data.frame(arm = rep(c("control", "peer"), each = nz / 2), age = round(rnorm(nz, 40, 10)))
zi$days <- round(runif(nz, 200, 365))
struct0 <- rbinom(nz, 1, plogis(-0.8 + 0.5 * (zi$arm == "peer")))
mu <- exp(-3.5 - 0.3 * (zi$arm == "peer") + 0.01 * (zi$age - 40)) * zi$days
zi$beddays <- ifelse(struct0 == 1, 0, rnbinom(nz, size = 1.5, mu = mu))
zi$logdays <- log(zi$days)
write.csv(zi, "zi_beddays.csv", row.names = FALSE)
ref$zi_zinb_pscl <- pscl_block(zeroinfl(beddays ~ arm + age + offset(logdays) | arm, data = zi,
                                        dist = "negbin"))
ref$zi_zinb_tmb <- tmb_block(glmmTMB(beddays ~ arm + age + offset(logdays), ziformula = ~ arm,
                                     data = zi, family = nbinom2))
ref$zi_zip1_pscl <- pscl_block(zeroinfl(beddays ~ arm + age + offset(logdays) | 1, data = zi,
                                        dist = "poisson"))
ref$zi_hurdle_nb_tmb <- tmb_block(glmmTMB(beddays ~ arm + age + offset(logdays), ziformula = ~ arm,
                                          data = zi, family = truncated_nbinom2))

## ---- synthetic zero-inflated counts with a subject intercept in the count part -----------
set.seed(16031)
nsub <- 200
zr <- expand.grid(visit = 1:3, id = 1:nsub)
zr$arm <- ifelse(zr$id <= nsub / 2, "control", "peer")
zr$days <- round(runif(nrow(zr), 60, 120))
zr$logdays <- log(zr$days)
bz <- rnorm(nsub, 0, 0.5)
mu <- exp(-3 - 0.3 * (zr$arm == "peer") + bz[zr$id]) * zr$days
s0 <- rbinom(nrow(zr), 1, plogis(-1 + 0.4 * (zr$arm == "peer")))
zr$beddays <- ifelse(s0 == 1, 0, rnbinom(nrow(zr), size = 2, mu = mu))
write.csv(zr, "zi_re.csv", row.names = FALSE)
ref$zire_zinb_tmb <- tmb_block(glmmTMB(beddays ~ arm + offset(logdays) + (1 | id),
                                       ziformula = ~ arm, data = zr, family = nbinom2))
ref$zire_hurdle_pois_tmb <- tmb_block(glmmTMB(beddays ~ arm + offset(logdays) + (1 | id),
                                              ziformula = ~ 1, data = zr,
                                              family = truncated_poisson))

## ---- synthetic partially nested binary trial (readmission) ------------------------------
set.seed(16016)
n <- 300; n_peer <- 150; gsize <- 10
id <- 1:n
arm <- ifelse(id <= n_peer, "peer", "control")
grp <- ifelse(arm == "peer", paste0("G", ((id - 1) %/% gsize) + 1), paste0("C-", id))
site <- paste0("S", (id %% 5) + 1)
u_g <- rnorm(n_peer / gsize, 0, 0.5); names(u_g) <- paste0("G", 1:(n_peer / gsize))
u_s <- rnorm(n, 0, 1.0)
pn <- expand.grid(visit = c("m6", "m12"), id = id, stringsAsFactors = FALSE)
pn$arm <- arm[pn$id]; pn$group <- grp[pn$id]; pn$site <- site[pn$id]
pn$peer <- as.integer(pn$arm == "peer")
eta <- -0.6 - 0.5 * pn$peer + 0.3 * (pn$visit == "m12") + u_s[pn$id] +
  ifelse(pn$peer == 1, u_g[pn$group], 0)
pn$readmit <- rbinom(nrow(pn), 1, plogis(eta))
write.csv(pn, "pn_binary.csv", row.names = FALSE)
ref$pn_binary_glmer <- glmer_block(glmer(readmit ~ arm + visit + site + (0 + peer | group) + (1 | id),
                                         data = pn, family = binomial))
ref$pn_binary_tmb <- tmb_block(glmmTMB(readmit ~ arm + visit + site + (0 + peer | group) + (1 | id),
                                       data = pn, family = binomial))

## ---- cluster-robust standard errors of GLMs (sandwich::vcovCL, type HC1 = CR1) -----------
suppressPackageStartupMessages(library(sandwich))
ref$packages$sandwich <- as.character(packageVersion("sandwich"))
g1 <- glm(y ~ treat * time, data = te, family = binomial)
ref$toenail_glm_cr1 <- list(term = names(coef(g1)), estimate = unname(coef(g1)),
  std_error = unname(sqrt(diag(vcovCL(g1, cluster = ~ patientID, type = "HC1")))))
g2 <- glm(beddays ~ arm + visit + offset(logdays), data = d, family = poisson)
ref$counts_pois_glm_cr1 <- list(term = names(coef(g2)), estimate = unname(coef(g2)),
  std_error = unname(sqrt(diag(vcovCL(g2, cluster = ~ id, type = "HC1")))))

write_json(ref, "r_glmm_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
cat("written r_glmm_reference.json\n")
