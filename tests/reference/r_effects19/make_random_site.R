# Reference for peerstats.random_site_effect (issue 19): a random treatment-by-site effect added
# to the primary MMRM of the bundled synthetic trial `social_inclusion` (si_subgroup_data.csv).
#   null: nlme::gls  sis ~ sis_baseline + site + arm * visit, corSymm + varIdent (unstructured), REML
#   alt:  nlme::lme  same fixed effects, random = list(site = pdDiag(~ 0 + treated)) (treated = 1 in
#         the peer arm), correlation corSymm(~ visit_num | site/subject), varIdent(~ 1 | visit), REML
# Writes random_site_reference.json: the SD of the random effect, both REML log-likelihoods, the
# LRT statistic and its boundary p (0.5 chi2_0 + 0.5 chi2_1; Self & Liang 1987), and the m8 effect
# (emmeans contrast, estimate and SE).
suppressPackageStartupMessages({library(nlme); library(emmeans); library(jsonlite)})
emm_options(msg.interaction = FALSE, msg.nesting = FALSE)
d <- read.csv("si_subgroup_data.csv", stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("waitlist", "peer"))
d$visit <- factor(d$visit, levels = c("m4", "m8"))
d$visit_num <- as.integer(d$visit)
d$site <- factor(d$site)
d$subject <- factor(d$subject)
d$treated <- as.numeric(d$arm == "peer")
f <- sis ~ sis_baseline + site + arm * visit
g0 <- gls(f, data = d, method = "REML", correlation = corSymm(form = ~ visit_num | subject),
          weights = varIdent(form = ~ 1 | visit),
          control = glsControl(msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12))
m1 <- lme(f, data = d, method = "REML", random = list(site = pdDiag(~ 0 + treated)),
          correlation = corSymm(form = ~ visit_num | site / subject),
          weights = varIdent(form = ~ 1 | visit),
          control = lmeControl(maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-12,
                               opt = "optim"))
sd_site <- sqrt(as.numeric(getVarCov(m1)[1, 1]))  # VarCorr() prints rounded text
lr <- 2 * (as.numeric(logLik(m1)) - as.numeric(logLik(g0)))
con <- as.data.frame(contrast(emmeans(m1, ~ arm | visit, mode = "containment"), "trt.vs.ctrl"))
con <- con[con$visit == "m8", ]
out <- list(R = R.version.string, nlme = as.character(packageVersion("nlme")),
            sd = sd_site, loglik_null = as.numeric(logLik(g0)), loglik = as.numeric(logLik(m1)),
            lrt = lr, p_value = 0.5 * pchisq(max(lr, 0), 1, lower.tail = FALSE),
            estimate_m8 = con$estimate, std_error_m8 = con$SE,
            fixef = as.list(fixef(m1)))
write_json(out, "random_site_reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
