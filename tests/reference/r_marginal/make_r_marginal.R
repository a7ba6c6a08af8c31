## Reference values for peerstats.marginal_effect (tests/models/test_marginal.py).
##
## Sources:
##  - beeca 0.2.0 (Boehringer-Ingelheim/openpharma; source snapshot of github:openpharma/beeca,
##    installed with R CMD INSTALL -l /work/rlib): get_marginal_effect(method = "Ge",
##    type = "model-based" | "HC0", contrast = diff / rr / or / logrr / logor) on beeca's
##    trial01 data (aval ~ trtp + bl_cov, logistic) and on a generated synthetic 3-arm trial
##    with a categorical covariate;
##  - beeca::ge_macro_trial01: the output of the Ge et al. (2011) SAS macro on trial01 (shipped
##    with beeca), a second, independent reference for the risk difference;
##  - a random-intercept logistic model: the population-averaged (marginal over the random
##    effect) risk per arm computed here with stats::integrate (adaptive quadrature, not
##    Gauss-Hermite) for fixed beta, Var(beta) and random-intercept variance, and the delta-method
##    variance with the integrated derivative; for the GLMM protocol of marginal_effect.
##  - a repeated-measures GEE (geepack::geeglm, respiratory, exchangeable, robust vcov):
##    g-computation over the visit-4 rows and the Ge delta method written out in base R.
## Run: Rscript make_r_marginal.R  (writes r_marginal_reference.json and the data CSVs next to it)
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({ library(beeca); library(jsonlite) })
here <- local({
  a <- commandArgs(trailingOnly = FALSE); f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) dirname(normalizePath(f)) else getwd()
})

beeca_all <- function(fit, ref) {
  out <- list()
  for (type in c("model-based", "HC0")) {
    for (ct in c("diff", "rr", "or", "logrr", "logor")) {
      m <- get_marginal_effect(fit, trt = names(fit$xlevels)[1], method = "Ge", type = type,
                               contrast = ct, reference = ref)
      out[[paste(type, ct, sep = "|")]] <- list(
        estimate = unname(m$marginal_est), se = unname(m$marginal_se),
        contrast = names(m$marginal_est),
        means = unname(m$counterfactual.means),
        arms = names(m$counterfactual.means),
        varcov_means = unname(m$robust_varcov))
    }
  }
  out
}

res <- list()
## ---- trial01 -------------------------------------------------------------------------------
d1 <- as.data.frame(trial01)
d1 <- d1[!is.na(d1$aval), c("usubjid", "aval", "trtp", "bl_cov")]
d1$trtp <- factor(d1$trtp)
write.csv(d1, file.path(here, "trial01.csv"), row.names = FALSE)
fit1 <- glm(aval ~ trtp + bl_cov, family = binomial, data = d1)
res$trial01 <- list(source = "beeca::trial01, beeca::get_marginal_effect(method='Ge')",
                    formula = "aval ~ trtp + bl_cov", reference = "0",
                    beeca = beeca_all(fit1, "0"),
                    ge_sas_macro = as.list(as.data.frame(beeca::ge_macro_trial01)))

## ---- generated 3-arm trial (synthetic) ------------------------------------------------------
set.seed(20261206)
n <- 450
arm <- factor(sample(c("usual", "peer", "peer_plus"), n, replace = TRUE),
              levels = c("usual", "peer", "peer_plus"))
site <- factor(sample(c("A", "B", "C"), n, replace = TRUE))
sev <- rnorm(n)
eta <- -0.6 + 0.5 * (arm == "peer") + 0.8 * (arm == "peer_plus") + 0.4 * (site == "B") -
  0.3 * (site == "C") + 0.7 * sev
y <- rbinom(n, 1, plogis(eta))
d2 <- data.frame(id = 1:n, y = y, arm = arm, site = site, severity = sev)
write.csv(d2, file.path(here, "three_arm.csv"), row.names = FALSE)
fit2 <- glm(y ~ arm + site + severity, family = binomial, data = d2)
res$three_arm <- list(source = "generated synthetic trial; beeca::get_marginal_effect(method='Ge')",
                      formula = "y ~ arm + site + severity", reference = "usual",
                      beeca = beeca_all(fit2, "usual"))

## ---- marginal over a random intercept (GLMM protocol), by stats::integrate -------------------
beta <- coef(fit2); Vb <- vcov(fit2); s2 <- 0.8
X0 <- model.matrix(fit2)
glmm_means <- function(beta) {
  sapply(levels(arm), function(a) {
    d <- d2; d$arm <- factor(a, levels = levels(arm))
    X <- model.matrix(~ arm + site + severity, d)
    eta <- drop(X %*% beta)
    p <- sapply(eta, function(e) integrate(function(z) plogis(e + sqrt(s2) * z) * dnorm(z),
                                            -Inf, Inf, rel.tol = 1e-12)$value)
    g <- sapply(eta, function(e) integrate(function(z) dlogis(e + sqrt(s2) * z) * dnorm(z),
                                            -Inf, Inf, rel.tol = 1e-12)$value)
    list(mean = mean(p), grad = colMeans(X * g))
  }, simplify = FALSE)
}
gm <- glmm_means(beta)
means <- sapply(gm, `[[`, "mean"); G <- t(sapply(gm, `[[`, "grad"))
Vm <- G %*% Vb %*% t(G)
rd <- means[-1] - means[1]
se_rd <- sqrt(sapply(2:3, function(k) { l <- rep(0, 3); l[1] <- -1; l[k] <- 1; drop(t(l) %*% Vm %*% l) }))
res$glmm_integrated <- list(
  source = "stats::integrate of plogis(x'b + s z) over N(0,1); delta method with integrated derivative",
  beta = unname(beta), vcov = unname(Vb), re_variance = s2, terms = names(beta),
  means = unname(means), arms = levels(arm), varcov_means = unname(Vm),
  risk_difference = unname(rd), se_risk_difference = unname(se_rd))

## ---- a repeated-measures GEE (geepack::respiratory, exchangeable, robust vcov), standardised
## over the rows of visit 4: g-computation and the Ge delta method written out in base R
suppressPackageStartupMessages(library(geepack))
rp <- geepack::respiratory
rp$subj <- rp$center * 1000 + rp$id
rp$arm <- factor(ifelse(rp$treat == "A", "active", "placebo"), levels = c("placebo", "active"))
rp$site <- factor(rp$center)
gf <- geeglm(outcome ~ arm + site + sex + age + baseline + factor(visit), data = rp, id = subj,
             family = binomial, corstr = "exchangeable",
             control = geese.control(epsilon = 1e-12, maxit = 200))
b <- coef(gf); V <- gf$geese$vbeta
d4 <- rp[rp$visit == 4, ]
cf <- lapply(levels(rp$arm), function(a) {
  d <- d4; d$arm <- factor(a, levels = levels(rp$arm))
  X <- model.matrix(~ arm + site + sex + age + baseline + factor(visit, levels = 1:4), d)
  eta <- drop(X %*% b)
  list(m = mean(plogis(eta)), g = colMeans(X * dlogis(eta)))
})
m <- sapply(cf, `[[`, "m"); G <- t(sapply(cf, `[[`, "g")); Vm <- G %*% V %*% t(G)
grad <- list(rd = c(-1, 1), rr = c(-m[2] / m[1]^2, 1 / m[1]),
             or = c(-(m[2] / (1 - m[2])) / m[1]^2, 1 / ((m[1] / (1 - m[1])) * (1 - m[2])^2)))
est <- list(rd = m[2] - m[1], rr = m[2] / m[1], or = (m[2] / (1 - m[2])) / (m[1] / (1 - m[1])))
res$gee_visit4 <- list(
  source = "geepack::geeglm on respiratory; base-R g-computation + delta method over visit-4 rows",
  means = unname(m), varcov_means = unname(Vm),
  estimate = lapply(est, unname),
  se = lapply(names(grad), function(k) sqrt(drop(t(grad[[k]]) %*% Vm %*% grad[[k]]))) |>
    setNames(names(grad)))

res$versions <- list(R = R.version.string, beeca = as.character(packageVersion("beeca")),
                     sandwich = as.character(packageVersion("sandwich")),
                     geepack = as.character(packageVersion("geepack")))
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(here, "r_marginal_reference.json"))
cat("wrote r_marginal_reference.json\n")
