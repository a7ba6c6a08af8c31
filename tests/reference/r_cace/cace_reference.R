# Reference values for peerstats.cace: R AER::ivreg (2SLS) on cace_data.csv.
# Run from this folder: Rscript cace_reference.R  (writes cace_reference.json)
# Per visit and receipt definition: qpr15 ~ qpr15_baseline + site + received | qpr15_baseline + site + z
# with z = randomised to peer. SEs: summary(fit) (homoskedastic, RSS/(n-k)) and
# sandwich::vcovHC(fit, type = "HC1"); t(n - k) p-values and 95% CIs from qt().
suppressPackageStartupMessages({library(AER); library(sandwich); library(jsonlite)})
d <- read.csv("cace_data.csv", stringsAsFactors = FALSE)
d$site <- factor(d$site)
d$z <- as.numeric(d$arm == "peer")
out <- list()
for (rec in c("received5", "received_col")) {
  for (v in c("post", "fu3")) {
    s <- d[d$visit == v, ]
    s$received <- s[[rec]]
    s$site <- droplevels(s$site)
    fit <- ivreg(qpr15 ~ qpr15_baseline + site + received | qpr15_baseline + site + z, data = s)
    df <- fit$df.residual
    est <- unname(coef(fit)["received"])
    se_u <- unname(sqrt(diag(vcov(fit)))["received"])
    sm <- summary(fit)$coefficients["received", ]
    se_r <- unname(sqrt(diag(vcovHC(fit, type = "HC1")))["received"])
    q <- qt(0.975, df)
    out[[paste(rec, v, sep = "|")]] <- list(
      receipt = rec, visit = v, n = nrow(s), df = df, estimate = est,
      unadjusted = list(std_error = unname(sm["Std. Error"]), statistic = unname(sm["t value"]),
                        p_value = unname(sm["Pr(>|t|)"]),
                        ci_lower = est - q * se_u, ci_upper = est + q * se_u),
      robust_hc1 = list(std_error = se_r, statistic = est / se_r,
                        p_value = 2 * pt(-abs(est / se_r), df),
                        ci_lower = est - q * se_r, ci_upper = est + q * se_r))
  }
}
meta <- list(R = R.version.string, AER = as.character(packageVersion("AER")),
             sandwich = as.character(packageVersion("sandwich")),
             data = "cace_data.csv (make_data.py: peer_recovery, SYNTHETIC)")
write_json(list(meta = meta, results = out), "cace_reference.json", digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
