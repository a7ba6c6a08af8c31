# Reference values for peerstats.cace(se = "cluster"): R AER::ivreg (2SLS) with
# sandwich::vcovCL(fit, cluster = ~cluster, type = "HC1") (CR1: G/(G-1) * (n-1)/(n-k)),
# on cace_cluster_data.csv (peer_recovery, SYNTHETIC; clusters = delivery groups in the peer
# arm, each usual-care participant their own). Per visit:
# qpr15 ~ qpr15_baseline + site + received | qpr15_baseline + site + z, z = randomised to peer.
# t(n - k) p-values and 95% CIs from qt(). Run here: Rscript cace_cluster.R
suppressPackageStartupMessages({library(AER); library(sandwich); library(jsonlite)})
d <- read.csv("cace_cluster_data.csv", stringsAsFactors = FALSE)
d$site <- factor(d$site)
d$z <- as.numeric(d$arm == "peer")
out <- list()
for (v in c("post", "fu3")) {
  s <- d[d$visit == v, ]
  s$received <- s$received5
  s$site <- droplevels(s$site)
  fit <- ivreg(qpr15 ~ qpr15_baseline + site + received | qpr15_baseline + site + z, data = s)
  df <- fit$df.residual
  est <- unname(coef(fit)["received"])
  se <- unname(sqrt(diag(vcovCL(fit, cluster = ~cluster, type = "HC1")))["received"])
  q <- qt(0.975, df)
  out[[v]] <- list(visit = v, n = nrow(s), n_clusters = length(unique(s$cluster)), df = df,
                   estimate = est, std_error = se, statistic = est / se,
                   p_value = 2 * pt(-abs(est / se), df),
                   ci_lower = est - q * se, ci_upper = est + q * se)
}
meta <- list(R = R.version.string, AER = as.character(packageVersion("AER")),
             sandwich = as.character(packageVersion("sandwich")),
             data = "cace_cluster_data.csv (make_data.py: peer_recovery, SYNTHETIC)")
write_json(list(meta = meta, results = out), "cace_cluster.json", digits = NA,
           auto_unbox = TRUE, pretty = TRUE)
