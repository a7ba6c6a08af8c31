# Reference values for peerstats.lmm (tests/models/test_lmm.py).
# Run from this directory:  Rscript make_r_lmm_extra.R
# Writes lmm_data.csv, singular_data.csv and r_lmm_extra.json.
# Models: lme4 + lmerTest (Satterthwaite), pbkrtest via lmerTest (Kenward-Roger),
# nlme::lme with varIdent / corSymm / corAR1. For nlme models, which have no Satterthwaite df
# in R, the df are computed here from a dense REML likelihood written in R (numDeriv), checked
# to reproduce nlme's REML log-likelihood and to have ~zero gradient at nlme's estimates.
suppressPackageStartupMessages({
  library(lme4); library(lmerTest); library(pbkrtest); library(nlme); library(jsonlite)
  library(numDeriv)
})

set.seed(20261123)
n <- 140
site <- sample(sprintf("s%d", 1:5), n, replace = TRUE)
arm <- rep(c("control", "peer"), length.out = n)
id <- sprintf("p%03d", 1:n)
group <- rep(NA_character_, n)
pi_ <- which(arm == "peer")
group[pi_] <- sprintf("g%02d", rep(1:12, length.out = length(pi_)))
baseline <- round(rnorm(n, 30, 8), 1)
u_site <- setNames(rnorm(5, 0, 3), sprintf("s%d", 1:5))
u_grp <- setNames(rnorm(12, 0, 5), sprintf("g%02d", 1:12))
u_id <- rnorm(n, 0, 4)
visits <- c("v1", "v2", "v3")
d <- expand.grid(k = 1:3, i = 1:n)
d$id <- id[d$i]; d$site <- site[d$i]; d$arm <- arm[d$i]; d$group <- group[d$i]
d$baseline <- baseline[d$i]
d$visit <- visits[d$k]; d$time <- d$k
d$peer <- as.numeric(d$arm == "peer")
sdres <- ifelse(d$arm == "peer", 5, 3.5)
d$y <- round(10 + 0.6 * d$baseline + 1.5 * d$peer + 0.8 * d$k + 1.0 * d$peer * d$k +
  u_site[d$site] + ifelse(is.na(d$group), 0, u_grp[d$group]) + u_id[d$i] +
  rnorm(n, 0, 1)[d$i] * d$k * 0.7 + rnorm(nrow(d), 0, sdres), 2)
d$y[runif(nrow(d)) < 0.12 * d$k / 2] <- NA
d <- d[, c("id", "site", "arm", "group", "peer", "visit", "time", "baseline", "y")]
write.csv(d, "lmm_data.csv", row.names = FALSE, na = "")

dd <- d[!is.na(d$y), ]
dd$arm <- factor(dd$arm, levels = c("control", "peer"))
dd$visit <- factor(dd$visit, levels = visits)
dd$grp_all <- ifelse(is.na(dd$group), paste0("c_", dd$id), dd$group)  # controls: own group
dd$vnum <- as.integer(dd$visit)

coef_lmer <- function(fit, ddf) {
  s <- summary(fit, ddf = ddf)$coefficients
  list(term = rownames(s), estimate = unname(s[, 1]), std_error = unname(s[, 2]),
       df = unname(s[, 3]), statistic = unname(s[, 4]), p_value = unname(s[, 5]))
}
contrast_L <- function(cn) {
  # peer - control at each visit, treatment coding (arm * visit)
  out <- list()
  for (v in visits) {
    L <- setNames(rep(0, length(cn)), cn)
    L["armpeer"] <- 1
    if (v != "v1") L[paste0("armpeer:visit", v)] <- 1
    out[[v]] <- L
  }
  out
}
contr_lmer <- function(fit, ddf) {
  cn <- names(fixef(fit))
  Ls <- contrast_L(cn)
  rows <- lapply(names(Ls), function(v) {
    r <- contest(fit, Ls[[v]], ddf = ddf, joint = FALSE, confint = TRUE)
    list(visit = v, estimate = r$Estimate, std_error = r$`Std. Error`, df = r$df,
         statistic = r$`t value`, p_value = r$`Pr(>|t|)`, ci_lower = r$lower, ci_upper = r$upper)
  })
  rows
}
varcomp_lmer <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(grp = vc$grp, var1 = ifelse(is.na(vc$var1), "", vc$var1),
       var2 = ifelse(is.na(vc$var2), "", vc$var2), vcov = vc$vcov, sdcor = vc$sdcor)
}
anova_lmer <- function(fit, ddf) {
  a <- anova(fit, ddf = ddf, type = 3)
  list(term = rownames(a), num_df = a$NumDF, den_df = a$DenDF, F = a$`F value`,
       p_value = a$`Pr(>F)`)
}
lmer_entry <- function(formula, data, desc, kr = TRUE, reml = TRUE, contrasts = TRUE) {
  fit <- lmer(formula, data = data, REML = reml,
              control = lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  e <- list(
    description = desc, formula = deparse(formula), engine = "lme4::lmer + lmerTest",
    method = if (reml) "reml" else "ml",
    loglik = as.numeric(logLik(fit)), n_obs = nobs(fit),
    singular = isSingular(fit),
    coef_satterthwaite = coef_lmer(fit, "Satterthwaite"),
    varcomp = varcomp_lmer(fit),
    anova_satterthwaite = anova_lmer(fit, "Satterthwaite")
  )
  if (contrasts) e$contrasts_satterthwaite <- contr_lmer(fit, "Satterthwaite")
  if (kr && reml) {
    e$coef_kenward_roger <- coef_lmer(fit, "Kenward-Roger")
    if (contrasts) e$contrasts_kenward_roger <- contr_lmer(fit, "Kenward-Roger")
  }
  ranef_df <- as.data.frame(ranef(fit))
  e$ranef <- list(grpvar = as.character(ranef_df$grpvar), term = as.character(ranef_df$term),
                  grp = as.character(ranef_df$grp), condval = ranef_df$condval)
  e
}

# ---- dense REML likelihood in R for Satterthwaite df of nlme fits ---------------------------
# V(par) built by the model-specific function vfun(par) (n x n); X, y dense.
dense_reml <- function(X, y, vfun) {
  n <- nrow(X); p <- ncol(X)
  function(par) {
    V <- vfun(par)
    Vi <- solve(V)
    XtViX <- crossprod(X, Vi %*% X)
    C <- solve(XtViX)
    beta <- C %*% crossprod(X, Vi %*% y)
    r <- y - X %*% beta
    m2 <- as.numeric(determinant(V)$modulus) + as.numeric(determinant(XtViX)$modulus) +
      as.numeric(crossprod(r, Vi %*% r)) + (n - p) * log(2 * pi)
    list(m2 = m2, C = C, beta = beta)
  }
}
satt_from_dense <- function(f, par, Ls) {
  H <- numDeriv::hessian(function(p) f(p)$m2, par)
  W <- 2 * solve(H)
  C0 <- f(par)$C
  lapply(Ls, function(L) {
    v <- as.numeric(t(L) %*% C0 %*% L)
    g <- numDeriv::grad(function(p) as.numeric(t(L) %*% f(p)$C %*% L), par)
    2 * v^2 / as.numeric(t(g) %*% W %*% g)
  })
}
nlme_entry <- function(fit, desc, X, y, vfun, par, Ls, coef_L = TRUE) {
  f <- dense_reml(X, y, vfun)
  at <- f(par)
  grad <- numDeriv::grad(function(p) f(p)$m2, par)
  cn <- colnames(X)
  est <- fixef(fit)
  se <- sqrt(diag(vcov(fit)))
  e <- list(description = desc, engine = "nlme::lme", method = "reml",
            loglik = as.numeric(logLik(fit)), n_obs = nrow(X),
            dense_minus2loglik = at$m2,
            check_dense_vs_nlme_loglik = -0.5 * at$m2 - as.numeric(logLik(fit)),
            check_max_gradient = max(abs(grad)),
            coef = list(term = cn, estimate = unname(est), std_error = unname(se)))
  if (coef_L) {
    Lc <- lapply(seq_along(cn), function(j) { L <- rep(0, length(cn)); L[j] <- 1; L })
    e$coef$df_satterthwaite <- unlist(satt_from_dense(f, par, Lc))
  }
  e$contrasts_satterthwaite <- lapply(names(Ls), function(v) {
    L <- Ls[[v]]
    list(visit = v, estimate = sum(L * est), std_error = sqrt(as.numeric(t(L) %*% vcov(fit) %*% L)),
         df = satt_from_dense(f, par, list(L))[[1]])
  })
  e
}

# nlme's defaults stop early (relative error ~1e-4 in the estimates); these settings converge
# to the REML optimum (log-likelihood stable to ~1e-11 across optimisers).
lctl <- lmeControl(maxIter = 1000, msMaxIter = 1000, msMaxEval = 5000, tolerance = 1e-12,
                   msTol = 1e-14, relStep = 1e-8, niterEM = 0, opt = "nlminb")
out <- list(R_version = R.version.string,
            packages = sapply(c("lme4", "lmerTest", "pbkrtest", "nlme", "numDeriv"),
                              function(p) as.character(packageVersion(p)), simplify = FALSE))

# 1. random intercept per subject
out$ri_subject <- lmer_entry(y ~ baseline + arm * visit + (1 | id), dd,
                             "random intercept per subject, REML")
out$ri_subject_ml <- lmer_entry(y ~ baseline + arm * visit + (1 | id), dd,
                                "random intercept per subject, ML", reml = FALSE)
# 2. subject + site
out$subject_site <- lmer_entry(y ~ baseline + arm * visit + (1 | site) + (1 | id), dd,
                               "random intercepts for site and subject")
# 3. partially nested, homoscedastic (lme4): controls carry group = NA in lmm_data.csv;
#    for lme4 each control is put in its own group, where the term (0 + peer) is zero.
out$pn_hom <- lmer_entry(y ~ baseline + arm * visit + (1 | id) + (0 + peer | grp_all), dd,
                         "partially nested: (1|id) + (0 + peer|group), homoscedastic")

# 4. partially nested, heteroscedastic (nlme varIdent by arm), repeated visits + subject
fit_het <- lme(y ~ baseline + arm * visit, random = list(grp_all = pdDiag(~ 0 + peer), id = ~ 1),
               weights = varIdent(form = ~ 1 | arm), data = dd, method = "REML",
               control = lctl)
X <- model.matrix(y ~ baseline + arm * visit, dd)
y <- dd$y
Zg <- outer(dd$grp_all, unique(dd$grp_all), "==") * dd$peer
Zi <- outer(dd$id, unique(dd$id), "==") * 1
isP <- dd$arm == "peer"
vf_het <- function(par) {
  # par: log sd group, log sd id, log sigma control, log sigma peer
  exp(2 * par[1]) * tcrossprod(Zg) + exp(2 * par[2]) * tcrossprod(Zi) +
    diag(ifelse(isP, exp(2 * par[4]), exp(2 * par[3])))
}
vc <- VarCorr(fit_het)
sd_g <- as.numeric(vc[which(rownames(vc) == "peer"), "StdDev"])
sd_i <- as.numeric(vc[which(rownames(vc) == "(Intercept)"), "StdDev"])
sig <- fit_het$sigma
ratio <- coef(fit_het$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
par_het <- log(c(sd_g, sd_i, sig * ratio["control"], sig * ratio["peer"]))
Ls <- contrast_L(colnames(X))
out$pn_het <- nlme_entry(fit_het, "partially nested: group (peer arm) + subject, varIdent by arm",
                         X, y, vf_het, par_het, Ls)
out$pn_het$varcomp <- list(group_var = sd_g^2, id_var = sd_i^2,
                           resid_var_control = exp(2 * par_het[3]),
                           resid_var_peer = exp(2 * par_het[4]))

# 4b. the same model homoscedastic in nlme (checks the log-likelihood convention vs lme4)
fit_homn <- lme(y ~ baseline + arm * visit, random = list(grp_all = pdDiag(~ 0 + peer), id = ~ 1),
                data = dd, method = "REML",
                control = lctl)
out$pn_hom_nlme_loglik <- as.numeric(logLik(fit_homn))

# 5. partially nested heteroscedastic, single post-treatment visit (Candlish et al. 2018 model)
d1 <- dd[dd$visit == "v3", ]
fit_het1 <- lme(y ~ baseline + arm, random = ~ 0 + peer | grp_all,
                weights = varIdent(form = ~ 1 | arm), data = d1, method = "REML",
                control = lctl)
X1 <- model.matrix(y ~ baseline + arm, d1)
Zg1 <- outer(d1$grp_all, unique(d1$grp_all), "==") * d1$peer
isP1 <- d1$arm == "peer"
vf1 <- function(par) exp(2 * par[1]) * tcrossprod(Zg1) +
  diag(ifelse(isP1, exp(2 * par[3]), exp(2 * par[2])))
vc1 <- VarCorr(fit_het1)
sd_g1 <- as.numeric(vc1["peer", "StdDev"])
ratio1 <- coef(fit_het1$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
par1 <- log(c(sd_g1, fit_het1$sigma * ratio1["control"], fit_het1$sigma * ratio1["peer"]))
L1 <- list(v3 = c(0, 0, 1))
out$pn_het_single <- nlme_entry(fit_het1, "partially nested single visit (v3): (0+peer|group), varIdent by arm",
                                X1, d1$y, vf1, par1, L1)
out$pn_het_single$varcomp <- list(group_var = sd_g1^2, resid_var_control = exp(2 * par1[2]),
                                  resid_var_peer = exp(2 * par1[3]))

# 6. random intercept and slope per subject
out$slope <- lmer_entry(y ~ baseline + arm * time + (1 + time | id), dd,
                        "correlated random intercept and slope (time) per subject", kr = TRUE,
                        contrasts = FALSE)
out$slope$contrasts_satterthwaite <- NULL
out$slope$contrasts_kenward_roger <- NULL

# 7. random intercept for site + unstructured residual across visits (nlme corSymm + varIdent)
fit_us <- lme(y ~ baseline + arm * visit, random = ~ 1 | site,
              correlation = corSymm(form = ~ vnum | site/id), weights = varIdent(form = ~ 1 | visit),
              data = dd, method = "REML",
              control = lctl)
out$site_us <- list(description = "(1|site) + unstructured residual across visits within subject",
                    engine = "nlme::lme corSymm + varIdent", loglik = as.numeric(logLik(fit_us)),
                    coef = list(term = names(fixef(fit_us)), estimate = unname(fixef(fit_us)),
                                std_error = unname(sqrt(diag(vcov(fit_us))))),
                    site_var = as.numeric(VarCorr(fit_us)["(Intercept)", "Variance"]),
                    resid_cov = {
                      cs <- corMatrix(fit_us$modelStruct$corStruct)[[1]]
                      sds <- fit_us$sigma * coef(fit_us$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[visits]
                      as.vector(diag(sds) %*% cs[1:3, 1:3] %*% diag(sds))
                    })
# 8. random intercept per subject + AR(1) residual
fit_ar <- lme(y ~ baseline + arm * visit, random = ~ 1 | id, correlation = corAR1(form = ~ vnum | id),
              data = dd, method = "REML",
              control = lctl)
out$id_ar1 <- list(description = "(1|id) + AR(1) residual", engine = "nlme::lme corAR1",
                   loglik = as.numeric(logLik(fit_ar)),
                   coef = list(term = names(fixef(fit_ar)), estimate = unname(fixef(fit_ar)),
                               std_error = unname(sqrt(diag(vcov(fit_ar))))),
                   id_var = as.numeric(VarCorr(fit_ar)["(Intercept)", "Variance"]),
                   sigma2 = fit_ar$sigma^2,
                   phi = as.numeric(coef(fit_ar$modelStruct$corStruct, unconstrained = FALSE)))

# 9. a singular fit: no site variation in the data
seed <- 1
repeat {
  set.seed(seed)
  ns <- 60
  s2 <- data.frame(id = sprintf("q%02d", 1:ns), site = sample(sprintf("s%d", 1:6), ns, TRUE),
                   arm = rep(c("control", "peer"), ns / 2), x = round(rnorm(ns), 2))
  s2 <- s2[rep(1:ns, each = 2), ]
  s2$visit <- rep(c("v1", "v2"), ns)
  s2$y <- round(5 + s2$x + 0.5 * (s2$arm == "peer") + rep(rnorm(ns, 0, 1), each = 2) +
                  rnorm(2 * ns), 2)
  f <- lmer(y ~ x + arm + visit + (1 | site) + (1 | id), data = s2)
  if (isSingular(f) && VarCorr(f)$site[1] == 0) break
  seed <- seed + 1
}
write.csv(s2, "singular_data.csv", row.names = FALSE)
s2$arm <- factor(s2$arm); s2$visit <- factor(s2$visit)
out$singular <- lmer_entry(y ~ x + arm + visit + (1 | site) + (1 | id), s2,
                           "singular fit: site variance estimated at zero", kr = FALSE,
                           contrasts = FALSE)
out$singular$contrasts_satterthwaite <- NULL
out$singular$anova_satterthwaite <- NULL
out$singular$seed <- seed


# 10. peerstats.analyze(): the same trial in the data layer's format (participants + long
#     assessments with a baseline visit). Primary model for a group-delivered peer arm:
#     y ~ y_baseline + site + arm * visit, group (peer arm) + subject random intercepts,
#     varIdent by arm; and, for the same data without group delivery, the MMRM (gls us).
tp <- data.frame(id = id, site = site, arm = arm, group = group)
write.csv(tp, "trial_participants.csv", row.names = FALSE, na = "")
ta <- rbind(data.frame(id = id, visit = "baseline", y = baseline),
            d[, c("id", "visit", "y")])
write.csv(ta, "trial_assessments.csv", row.names = FALSE, na = "")
dd$site <- factor(dd$site)
fit_an <- lme(y ~ baseline + site + arm * visit,
              random = list(grp_all = pdDiag(~ 0 + peer), id = ~ 1),
              weights = varIdent(form = ~ 1 | arm), data = dd, method = "REML", control = lctl)
Xa <- model.matrix(y ~ baseline + site + arm * visit, dd)
vc <- VarCorr(fit_an)
sd_g <- as.numeric(vc[which(rownames(vc) == "peer"), "StdDev"])
sd_i <- as.numeric(vc[which(rownames(vc) == "(Intercept)"), "StdDev"])
ratio <- coef(fit_an$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)
par_an <- log(c(sd_g, sd_i, fit_an$sigma * ratio["control"], fit_an$sigma * ratio["peer"]))
Ls_an <- contrast_L(colnames(Xa))
out$analyze_pn <- nlme_entry(fit_an, "analyze(): partially nested, site fixed, varIdent by arm",
                             Xa, dd$y, vf_het, par_an, Ls_an, coef_L = FALSE)
vp <- exp(2 * par_an)
out$analyze_pn$icc_group <- vp[1] / (vp[1] + vp[2] + vp[4])
gs <- table(unique(dd[dd$arm == "peer", c("id", "group")])$group)
out$analyze_pn$mean_group_size <- mean(gs)
out$analyze_pn$design_effect <- 1 + (mean(gs) - 1) * out$analyze_pn$icc_group
nb <- table(arm); vb <- tapply(baseline, arm, var)
sd_pooled <- sqrt(sum((nb - 1) * vb) / sum(nb - 1))
out$analyze_pn$sd_pooled_baseline <- sd_pooled
for (k in seq_along(out$analyze_pn$contrasts_satterthwaite)) {
  e <- out$analyze_pn$contrasts_satterthwaite[[k]]
  q <- qt(0.975, e$df)
  e$ci_lower <- e$estimate - q * e$std_error; e$ci_upper <- e$estimate + q * e$std_error
  e$cohens_d <- e$estimate / sd_pooled
  e$d_ci_lower <- e$ci_lower / sd_pooled; e$d_ci_upper <- e$ci_upper / sd_pooled
  out$analyze_pn$contrasts_satterthwaite[[k]] <- e
}
fit_gls <- gls(y ~ baseline + site + arm * visit, correlation = corSymm(form = ~ vnum | id),
               weights = varIdent(form = ~ 1 | visit), data = dd, method = "REML",
               control = glsControl(maxIter = 1000, msMaxIter = 1000, tolerance = 1e-12,
                                    msTol = 1e-14, opt = "nlminb"))
Lg <- contrast_L(names(coef(fit_gls)))
out$analyze_mmrm <- list(
  description = "analyze() without group delivery: gls us (corSymm + varIdent by visit)",
  loglik = as.numeric(logLik(fit_gls)),
  contrasts = lapply(names(Lg), function(v) {
    L <- Lg[[v]]
    est <- sum(L * coef(fit_gls)); se <- sqrt(as.numeric(t(L) %*% vcov(fit_gls) %*% L))
    list(visit = v, estimate = est, std_error = se, cohens_d = est / sd_pooled)
  }))

# 11. a singular random-slope fit: no slope variation in the data
seed <- 1
repeat {
  set.seed(seed)
  ns <- 50
  s3 <- data.frame(id = sprintf("r%02d", 1:ns), arm = rep(c("control", "peer"), ns / 2),
                   x = round(rnorm(ns), 2))
  s3 <- s3[rep(1:ns, each = 4), ]
  s3$time <- rep(0:3, ns)
  s3$y <- round(3 + s3$x + 0.4 * s3$time + rep(rnorm(ns, 0, 1.5), each = 4) +
                  rnorm(4 * ns), 2)
  f <- suppressMessages(lmer(y ~ x + arm * time + (1 + time | id), data = s3))
  th <- getME(f, "theta")
  if (isSingular(f) && min(th[c(1, 3)]) < 1e-10) break
  seed <- seed + 1
}
write.csv(s3, "singular_slope_data.csv", row.names = FALSE)
s3$arm <- factor(s3$arm)
out$singular_slope <- lmer_entry(y ~ x + arm * time + (1 + time | id), s3,
                                 "singular random slope: G of (1 + time | id) rank 1",
                                 kr = FALSE, contrasts = FALSE)
out$singular_slope$anova_satterthwaite <- NULL
out$singular_slope$theta <- unname(getME(f, "theta"))
out$singular_slope$seed <- seed

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "r_lmm_extra.json")
cat("done\n")
