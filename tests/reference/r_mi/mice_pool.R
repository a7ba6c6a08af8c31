# Reference values for peerstats.pool and Imputations.analyse pooling (Rubin + Barnard-Rubin).
# mice imputes a small two-visit trial (its own RNG; m = 5), an ANCOVA per visit is fitted on
# each completed set with lm(), and mice::pool / mice::pool.scalar pool them. The completed
# datasets and the pooled numbers are written to mice_pool.json.
# Run: Rscript tests/reference/r_mi/mice_pool.R   (from the repository root)
suppressMessages({library(mice); library(jsonlite)})
set.seed(20261130)
n <- 80
arm <- factor(rep(c("usual", "peer"), each = n / 2), levels = c("usual", "peer"))
base <- round(rnorm(n, 30, 6), 1)
y1 <- round(5 + 0.8 * base + 2 * (arm == "peer") + rnorm(n, 0, 4), 2)
y2 <- round(3 + 0.7 * base + 0.5 * y1 + 3 * (arm == "peer") + rnorm(n, 0, 4), 2)
y1[sample(n, 12)] <- NA
y2[sample(n, 20)] <- NA
wide <- data.frame(subject = sprintf("s%03d", 1:n), arm = arm, base = base, y1 = y1, y2 = y2)
pred <- make.predictorMatrix(wide); pred[, "subject"] <- 0
imp <- mice(wide, m = 5, method = c("", "", "", "norm", "norm"), predictorMatrix = pred,
            printFlag = FALSE, seed = 42)
completed <- lapply(1:5, function(i) complete(imp, i))
res <- list()
for (v in c("y1", "y2")) {
  fits <- with(imp, lm(as.formula(paste(v, "~ arm + base"))))
  p <- pool(fits)$pooled
  res[[v]] <- lapply(seq_len(nrow(p)), function(k) list(
    term = as.character(p$term[k]), estimate = p$estimate[k], ubar = p$ubar[k], b = p$b[k],
    t = p$t[k], dfcom = p$dfcom[k], df = p$df[k], riv = p$riv[k], lambda = p$lambda[k],
    fmi = p$fmi[k], std_error = sqrt(p$t[k])))
}
# pool.scalar on fixed numbers (df_complete finite and infinite)
Q <- c(1.12, 1.30, 0.95, 1.41, 1.05, 1.22, 1.18)
U <- c(0.040, 0.052, 0.047, 0.039, 0.050, 0.044, 0.046)
ps_fin <- pool.scalar(Q, U, n = 60, k = 4)
ps_inf <- pool.scalar(Q, U)
sc <- function(ps) list(qbar = ps$qbar, ubar = ps$ubar, b = ps$b, t = ps$t, df = ps$df,
                        r = ps$r, fmi = ps$fmi)
out <- list(
  source = paste("R", getRversion(), "mice", as.character(packageVersion("mice"))),
  visits = c("y1", "y2"),
  data = list(subject = wide$subject, arm = as.character(wide$arm), base = wide$base,
              y1 = wide$y1, y2 = wide$y2),
  completed = lapply(completed, function(d) list(y1 = d$y1, y2 = d$y2)),
  pooled = res,
  scalar = list(Q = Q, U = U, n = 60, k = 4, finite = sc(ps_fin), infinite = sc(ps_inf))
)
write_json(out, "tests/reference/r_mi/mice_pool.json", digits = NA, auto_unbox = TRUE,
           null = "null", na = "null", pretty = TRUE)
