## Reference values for peerstats.gee (tests/models/test_gee.py).
##
## Sources:
##  - geepack::geeglm on MASS::epil (epilepsy seizure counts; Thall & Vail 1990, analysed by
##    Diggle, Liang & Zeger, Table 8.10 model form): Poisson, log link, exchangeable, robust SEs;
##  - geepack::geeglm on geepack::respiratory (binary, 4 visits, treatment A vs placebo) and on
##    geepack::ohio (binary, wheeze, 4 ages): logit link, independence / exchangeable / ar1 /
##    unstructured working correlations, robust ("san.se") and naive SEs;
##  - Mancl & DeRouen (2001) bias-reduced covariance: geepack has none, so it is computed here
##    from the geeglm fit by the published formula (documented in md_vcov below), and for the
##    independence working correlation cross-checked with clubSandwich::vcovCR(glm, type="CR3")
##    (the same (I - H_ii)^-1 adjustment for a GLM = independence GEE).
##  - emmeans on the respiratory exchangeable fit: probabilities, odds ratio, risk difference;
##  - MASS::glm.nb on epil: the NB2 theta that gee(family="negative_binomial") holds fixed;
##  - geeglm gaussian exchangeable on epil (identity link, estimated scale).
## Run: Rscript make_r_gee.R   (writes r_gee_reference.json and the data CSVs next to it)
suppressPackageStartupMessages({
  library(emmeans); library(geepack); library(MASS); library(clubSandwich); library(jsonlite)
})
here <- local({
  a <- commandArgs(trailingOnly = FALSE); f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) dirname(normalizePath(f)) else getwd()
})

## Mancl-DeRouen (2001) bias-reduced sandwich from a geeglm fit:
##   M = sum_i D_i' V_i^-1 D_i,  H_ii = D_i M^-1 D_i' V_i^-1,
##   B = sum_i D_i' V_i^-1 (I - H_ii)^-1 r_i r_i' (I - H_ii)^-T V_i^-1 D_i,
##   V_MD = M^-1 B M^-1,
## with D_i = d mu_i / d beta, V_i = A_i^1/2 R_i(alpha) A_i^1/2 (phi cancels), r_i = y_i - mu_i.
## R_i is the working correlation among the cluster's observed waves (waves = `wave` column).
md_vcov <- function(fit, data, id, wave, corstr, nwaves) {
  X <- model.matrix(fit); mu <- fitted(fit); eta <- fit$linear.predictors
  fam <- fit$family
  D <- X * as.vector(fam$mu.eta(eta)); A <- fam$variance(mu); r <- fit$y - mu
  a <- fit$geese$alpha
  Rfull <- switch(corstr,
    independence = diag(nwaves),
    exchangeable = { R <- matrix(a, nwaves, nwaves); diag(R) <- 1; R },
    ar1 = a^abs(outer(1:nwaves, 1:nwaves, "-")),
    unstructured = { R <- diag(nwaves); R[lower.tri(R)] <- a; R <- t(R); R[lower.tri(R)] <- a
                     ## geepack orders alpha as alpha.1:2, 1:3, ..., column-major upper triangle
                     R <- diag(nwaves); k <- 0
                     for (i in 1:(nwaves - 1)) for (j in (i + 1):nwaves) { k <- k + 1; R[i, j] <- R[j, i] <- a[k] }
                     R })
  ids <- unique(id); p <- ncol(X)
  Vinv <- list(); M <- matrix(0, p, p)
  for (g in ids) {
    k <- which(id == g); w <- wave[k]
    V <- diag(sqrt(A[k]), length(k)) %*% Rfull[w, w, drop = FALSE] %*% diag(sqrt(A[k]), length(k))
    Vi <- solve(V); Vinv[[as.character(g)]] <- Vi
    M <- M + t(D[k, , drop = FALSE]) %*% Vi %*% D[k, , drop = FALSE]
  }
  Minv <- solve(M); B <- matrix(0, p, p)
  for (g in ids) {
    k <- which(id == g); Vi <- Vinv[[as.character(g)]]; Dk <- D[k, , drop = FALSE]
    H <- Dk %*% Minv %*% t(Dk) %*% Vi
    u <- t(Dk) %*% Vi %*% solve(diag(length(k)) - H, r[k])
    B <- B + u %*% t(u)
  }
  V <- Minv %*% B %*% Minv
  dimnames(V) <- list(colnames(X), colnames(X)); V
}

one_fit <- function(name, formula, data, family, corstr, wave_col, nwaves, source) {
  data$.id <- data$.cluster; data$.wave <- data[[wave_col]]
  fit <- geeglm(formula, data = data, id = .id, family = family, corstr = corstr,
                waves = .wave, control = geese.control(epsilon = 1e-12, maxit = 200))
  vr <- fit$geese$vbeta; vn <- fit$geese$vbeta.naiv
  md <- md_vcov(fit, data, data$.id, data[[wave_col]], corstr, nwaves)
  out <- list(
    source = source, formula = deparse(formula), family = family$family,
    link = family$link, corstr = corstr,
    terms = colnames(model.matrix(fit)),
    estimate = unname(coef(fit)),
    se_robust = sqrt(diag(vr)), se_naive = sqrt(diag(vn)),
    vcov_robust = unname(vr), vcov_naive = unname(vn),
    se_md = unname(sqrt(diag(md))), vcov_md = unname(md),
    alpha = unname(fit$geese$alpha), scale = unname(fit$geese$gamma),
    n_clusters = length(unique(data$.id)), nobs = nrow(data)
  )
  if (corstr == "independence") {
    g <- glm(formula, data = data, family = family)
    cr3 <- as.matrix(vcovCR(g, cluster = data$.id, type = "CR3"))
    out$se_cr3_clubsandwich <- unname(sqrt(diag(cr3)))
  }
  out
}

res <- list()
## ---- epilepsy: Poisson, exchangeable (and independence) ------------------------------------
ep <- MASS::epil
ep$.cluster <- ep$subject
write.csv(ep[, c("y", "trt", "base", "age", "V4", "subject", "period", "lbase", "lage")],
          file.path(here, "epil.csv"), row.names = FALSE)
src_ep <- "MASS::epil, geepack::geeglm (DLZ Table 8.10 data)"
f_ep <- y ~ lbase * trt + lage + V4
for (cs in c("exchangeable", "independence", "ar1")) {
  res[[paste0("epil_", cs)]] <- one_fit(paste0("epil_", cs), f_ep, ep, poisson(), cs,
                                         "period", 4, src_ep)
}
res[["epil_gaussian_exchangeable"]] <- one_fit("epil_gaussian", f_ep, ep, gaussian(),
                                              "exchangeable", "period", 4, src_ep)
nb <- MASS::glm.nb(f_ep, data = ep)
res$epil_glm_nb <- list(source = "MASS::glm.nb (ML theta of the independence model)",
                        theta = nb$theta, terms = names(coef(nb)), estimate = unname(coef(nb)))
## ---- respiratory: binary, treatment arm, 4 visits ------------------------------------------
rp <- geepack::respiratory
rp$subj <- rp$center * 1000 + rp$id
rp$.cluster <- rp$subj
rp$arm <- factor(ifelse(rp$treat == "A", "active", "placebo"), levels = c("placebo", "active"))
rp$site <- factor(rp$center)  # 'center' is a formulaic transform name: renamed
write.csv(rp[, c("subj", "site", "arm", "sex", "age", "baseline", "visit", "outcome")],
          file.path(here, "respiratory.csv"), row.names = FALSE)
src_rp <- "geepack::respiratory, geepack::geeglm"
f_rp <- outcome ~ arm + site + sex + age + baseline
for (cs in c("independence", "exchangeable", "ar1", "unstructured")) {
  res[[paste0("resp_", cs)]] <- one_fit(paste0("resp_", cs), f_rp, rp, binomial(), cs,
                                         "visit", 4, src_rp)
}
## emmeans on the exchangeable fit (robust vcov, emmeans' default for geeglm): per-arm
## probabilities (type = "response"), the odds ratio, and the risk difference (regrid)
rp$.id <- rp$.cluster; rp$.wave <- rp$visit
fx <- geeglm(f_rp, data = rp, id = .id, family = binomial(), corstr = "exchangeable",
             waves = .wave, control = geese.control(epsilon = 1e-12, maxit = 200))
## cov.keep = character(0): every numeric covariate at its mean, as peerstats (emmeans' own
## default cov.keep = "2" would treat the 0/1 covariate `baseline` as a factor)
emm <- emmeans(fx, ~ arm, cov.keep = character(0))
em <- as.data.frame(summary(emm, type = "response"))
orr <- as.data.frame(summary(pairs(emm, reverse = TRUE), type = "response", infer = TRUE))
rd <- as.data.frame(summary(pairs(regrid(emm), reverse = TRUE), infer = TRUE))
res$resp_emmeans <- list(source = "emmeans::emmeans on geepack::geeglm (exchangeable)",
                         arm = as.character(em$arm), prob = em$prob, se = em$SE,
                         lower = em$asymp.LCL, upper = em$asymp.UCL,
                         odds_ratio = orr$odds.ratio, or_lower = orr$asymp.LCL,
                         or_upper = orr$asymp.UCL, or_p = orr$p.value,
                         rd = rd$estimate, rd_se = rd$SE, rd_lower = rd$asymp.LCL,
                         rd_upper = rd$asymp.UCL)
## ---- ohio: binary wheeze ---------------------------------------------------------------------
oh <- geepack::ohio
oh$.cluster <- oh$id; oh$wave <- oh$age + 3
write.csv(oh[, c("resp", "id", "age", "smoke")], file.path(here, "ohio.csv"), row.names = FALSE)
for (cs in c("exchangeable", "ar1")) {
  res[[paste0("ohio_", cs)]] <- one_fit(paste0("ohio_", cs), resp ~ age * smoke, oh,
                                         binomial(), cs, "wave", 4,
                                         "geepack::ohio, geepack::geeglm")
}

## ---- synthetic bed-day counts with unequal follow-up (offset), generated here -----------------
set.seed(161)
nb_n <- 120
bd <- data.frame(pid = rep(1:nb_n, each = 2), period = rep(1:2, nb_n),
                 arm = factor(rep(sample(c("usual", "peer"), nb_n, TRUE), each = 2),
                              levels = c("usual", "peer")))
bd$years <- round(runif(nrow(bd), 0.2, 1), 3)
u <- rep(rnorm(nb_n, 0, 0.7), each = 2)
bd$bed_days <- rpois(nrow(bd), bd$years * exp(1.2 - 0.4 * (bd$arm == "peer") + u))
bd$log_years <- log(bd$years)
write.csv(bd, file.path(here, "bed_days.csv"), row.names = FALSE)
bd$.cluster <- bd$pid
res$beddays_exchangeable <- one_fit("beddays", bed_days ~ arm + offset(log_years), bd,
                                    poisson(), "exchangeable", "period", 2,
                                    "generated synthetic bed-days; geepack::geeglm with offset")

res$versions <- list(R = R.version.string, geepack = as.character(packageVersion("geepack")),
                     clubSandwich = as.character(packageVersion("clubSandwich")),
                     MASS = as.character(packageVersion("MASS")),
                     emmeans = as.character(packageVersion("emmeans")))
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(here, "r_gee_reference.json"))
cat("wrote", file.path(here, "r_gee_reference.json"), "\n")
