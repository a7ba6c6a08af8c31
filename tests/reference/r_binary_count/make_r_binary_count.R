# Reference values for the binary and count outcome adapters of peerstats.pipeline.outcomes
# (issue 16.5), on the bundled SYNTHETIC peer_recovery trial (registry follow-up columns).
#   Rscript tests/reference/r_binary_count/make_r_binary_count.R
# writes r_binary_count.json beside this script.
suppressPackageStartupMessages({
  library(MASS); library(sandwich); library(emmeans); library(geepack); library(jsonlite)
})
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
root <- normalizePath(file.path(here, "..", "..", ".."))
p <- read.csv(file.path(root, "src/peerstats/datasets/data/peer_recovery/participants.csv"),
              stringsAsFactors = FALSE)
p <- p[p$randomised == 1, ]
p$arm <- factor(p$arm, levels = c("usual", "peer"))
p$site <- factor(p$site)
p$cluster <- ifelse(is.na(p$group) | p$group == "", paste0("s:", p$id), paste0("g:", p$group))

coefs <- function(fit, V) {
  b <- coef(fit); se <- sqrt(diag(V))
  lapply(setNames(names(b), names(b)), function(k) list(estimate = unname(b[k]), std_error = unname(se[k])))
}

# ---- readmission within 12 months: logistic regression on arm + site
rb <- p[!is.na(p$readmitted_12m), ]
lg <- glm(readmitted_12m ~ arm + site, family = binomial, data = rb)
V_model <- vcov(lg)
V_cl <- vcovCL(lg, cluster = ~cluster, type = "HC1")  # G/(G-1) (N-1)/(N-K)
# g-computation: risks standardised over the analysed participants (emmeans counterfactuals)
marg <- function(V) {
  em <- emmeans(lg, "arm", counterfactuals = "arm", vcov. = V)
  rd <- summary(contrast(em, list(peer_minus_usual = c(-1, 1))))
  lem <- regrid(em, transform = "log")
  rr <- summary(contrast(lem, list(log_ratio = c(-1, 1))))
  risks <- summary(em)
  list(risk_usual = risks$prob[risks$arm == "usual"], risk_peer = risks$prob[risks$arm == "peer"],
       risk_difference = rd$estimate, risk_difference_se = rd$SE,
       log_risk_ratio = rr$estimate, log_risk_ratio_se = rr$SE)
}
binary <- list(
  n = nrow(rb), loglik = as.numeric(logLik(lg)),
  coef_model = coefs(lg, V_model), coef_cluster = coefs(lg, V_cl),
  marginal_model = marg(V_model), marginal_cluster = marg(V_cl)
)

# GEE: delivery groups as clusters (participants without a group: clusters of one),
# exchangeable working correlation, robust (sandwich) covariance; data sorted by cluster
rg <- rb[order(rb$cluster, rb$id), ]
gf <- geeglm(readmitted_12m ~ arm + site, id = factor(cluster, levels = unique(cluster)),
             data = rg, family = binomial, corstr = "exchangeable")
gs <- summary(gf)$coefficients
binary$gee <- lapply(setNames(rownames(gs), rownames(gs)), function(k)
  list(estimate = gs[k, "Estimate"], std_error = gs[k, "Std.err"]))
binary$gee_alpha <- unname(gf$geese$alpha)

# ---- psychiatric bed-days: negative binomial (NB2) with log(follow-up days) as offset
rc <- p[!is.na(p$bed_days), ]
nb <- glm.nb(bed_days ~ arm + site + offset(log(followup_days)), data = rc,
             control = glm.control(epsilon = 1e-12, maxit = 100))
po <- glm(bed_days ~ arm + site + offset(log(followup_days)), family = poisson, data = rc)
count <- list(
  n = nrow(rc), theta = nb$theta, loglik = as.numeric(logLik(nb)),
  coef_model = coefs(nb, vcov(nb)),
  coef_cluster = coefs(nb, vcovCL(nb, cluster = ~cluster, type = "HC1")),
  poisson_coef_model = coefs(po, vcov(po)), poisson_loglik = as.numeric(logLik(po))
)

out <- list(
  source = "R glm (binomial, poisson), MASS::glm.nb, sandwich::vcovCL(type = 'HC1'), emmeans counterfactuals, geepack::geeglm",
  data = "src/peerstats/datasets/data/peer_recovery/participants.csv (SYNTHETIC), randomised rows",
  R = R.version.string,
  packages = list(MASS = as.character(packageVersion("MASS")),
                  sandwich = as.character(packageVersion("sandwich")),
                  emmeans = as.character(packageVersion("emmeans")),
                  geepack = as.character(packageVersion("geepack"))),
  binary = binary, count = count
)
write_json(out, file.path(here, "r_binary_count.json"), auto_unbox = TRUE, digits = NA, pretty = TRUE)
