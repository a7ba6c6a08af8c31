# Reference for peerstats.impute_multilevel(residual_by=None): R jomo on pn_trial.csv.
# Run from this folder: Rscript jomo_reference.R   (writes jomo_reference.json; ~1 min)
# Model (jomo1rancon): Y = (post, fu3), X = (1, peer, baseline), Z = delivered (1 in the peer
# arm, 0 in usual care), clusters = delivery groups; usual care is one cluster with Z = 0 (its
# random effect never enters the outcomes). Default jomo priors; common level-1 covariance.
# Analysis of each completed set: lm(y_v ~ peer + baseline) per visit; we store each set's
# estimate and variance, the mean imputed value per arm and visit, and posterior means of the
# group-effect covariance (covu) and residual covariance (omega) from a long MCMC chain with
# batch-means Monte-Carlo standard errors.
suppressPackageStartupMessages({library(jomo); library(jsonlite)})
set.seed(20261130)
d <- read.csv("pn_trial.csv", stringsAsFactors = FALSE)
d$peer <- as.numeric(d$arm == "peer")
clus <- ifelse(d$peer == 1, d$group, "usual")
Y <- d[, c("post", "fu3")]
X <- data.frame(const = 1, peer = d$peer, baseline = d$baseline)
Z <- data.frame(delivered = d$peer)
M <- 400
t0 <- Sys.time()
imp <- jomo1rancon(Y = Y, X = X, Z = Z, clus = data.frame(clus = clus), nburn = 2000,
                   nbetween = 100, nimp = M, output = 0)
secs <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
miss_post <- is.na(d$post); miss_fu3 <- is.na(d$fu3)
est <- list(post = numeric(M), fu3 = numeric(M)); vars <- est
imean <- list()
for (k in 1:M) {
  s <- imp[imp$Imputation == k, ]
  s <- s[order(s$id), ]
  for (v in c("post", "fu3")) {
    fit <- lm(s[[v]] ~ s$peer + s$baseline)
    est[[v]][k] <- coef(fit)[2]
    vars[[v]][k] <- vcov(fit)[2, 2]
    for (a in c("usual", "peer")) {
      sel <- (if (v == "post") miss_post else miss_fu3) & d$arm == a
      imean[[paste(a, v, sep = "|")]][k] <- mean(s[[v]][sel])
    }
  }
}
# posterior means of the covariance parameters from one long chain
ch <- jomo1rancon.MCMCchain(Y = Y, X = X, Z = Z, clus = data.frame(clus = clus), nburn = 20000,
                            output = 0)
bm <- function(x, nb = 50) { b <- colMeans(matrix(x[1:(nb * floor(length(x) / nb))], ncol = nb)); sd(b) / sqrt(nb) }
keep <- 2001:20000
post_summary <- function(arr, i, j) { x <- arr[i, j, keep]; list(mean = mean(x), mcse = bm(x)) }
out <- list(
  meta = list(R = R.version.string, jomo = as.character(packageVersion("jomo")),
              data = "pn_trial.csv (make_data.py, SYNTHETIC)", n_imputations = M,
              nburn = 2000, nbetween = 100, chain = "MCMCchain nburn 20000, first 2000 dropped",
              seconds = secs),
  estimates = est, variances = vars, imputed_means = imean,
  covu = list(post = post_summary(ch$collectcovu, 1, 1), fu3 = post_summary(ch$collectcovu, 2, 2),
              cov = post_summary(ch$collectcovu, 1, 2)),
  omega = list(post = post_summary(ch$collectomega, 1, 1), fu3 = post_summary(ch$collectomega, 2, 2),
               cov = post_summary(ch$collectomega, 1, 2)))
write_json(out, "jomo_reference.json", digits = NA, auto_unbox = TRUE, pretty = FALSE)
