# R mmrm reference for peerstats.mmrm_many (tests/models/test_mmrm_many.py).
# Data: replicates.csv (synthetic, made by make_data.py). Per replicate, two models:
#   "us":       y ~ base + arm * visit + us(visit | id)         REML, Satterthwaite
#   "us_group": y ~ base + arm * visit + us(visit | arm / id)   (one UN covariance per arm)
# and the contrast avg = (arm[T.usual]:visit[T.w2] + arm[T.usual]:visit[T.w3]) / 2 by df_1d().
# Run: R_LIBS=/work/rlib Rscript tests/reference/mmrm_many/mmrm_many.R
suppressMessages(library(mmrm))
library(jsonlite)
here <- dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE)))
d <- read.csv(file.path(here, "replicates.csv"))
d$arm <- factor(d$arm, levels = c("peer", "usual"))
d$visit <- factor(d$visit, levels = paste0("w", 0:3))
d$id <- factor(d$id)
forms <- list(
  us = y ~ base + arm * visit + us(visit | id),
  us_group = y ~ base + arm * visit + us(visit | arm / id)
)
out <- list()
for (r in sort(unique(d$rep))) {
  dr <- droplevels(d[d$rep == r, ], except = c("arm", "visit"))
  for (m in names(forms)) {
    key <- paste0(m, "_", r)
    fit <- tryCatch(mmrm(forms[[m]], data = dr, method = "Satterthwaite", reml = TRUE),
                    error = function(e) e)
    if (inherits(fit, "error")) {
      out[[key]] <- list(rep = r, model = m, error = conditionMessage(fit))
      next
    }
    co <- summary(fit)$coefficients
    L <- setNames(rep(0, nrow(co)), rownames(co))
    L[c("armusual:visitw2", "armusual:visitw3")] <- 0.5
    ct <- df_1d(fit, L)
    out[[key]] <- list(
      rep = r, model = m, converged = component(fit, "convergence") == 0,
      terms = rownames(co), estimate = unname(co[, "Estimate"]),
      std_error = unname(co[, "Std. Error"]), df = unname(co[, "df"]),
      statistic = unname(co[, "t value"]), p_value = unname(co[, "Pr(>|t|)"]),
      avg = list(estimate = ct$est, std_error = ct$se, df = ct$df, statistic = ct$t_stat,
                 p_value = ct$p_val),
      neg2_reml = -2 * as.numeric(logLik(fit))
    )
  }
}
meta <- list(
  source = "R mmrm on tests/reference/mmrm_many/replicates.csv (synthetic data)",
  R = R.version.string, mmrm = as.character(packageVersion("mmrm")),
  TMB = as.character(packageVersion("TMB")), date = as.character(Sys.Date())
)
write_json(list(meta = meta, fits = out), file.path(here, "mmrm_many.json"), digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
