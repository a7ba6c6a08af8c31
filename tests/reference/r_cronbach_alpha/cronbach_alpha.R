# Cronbach's alpha by the textbook formula in base R (Cronbach 1951):
#   alpha = k / (k - 1) * (1 - sum(var(item_i)) / var(total))
# with listwise deletion, and the Feldt, Woodruff & Salih (1987) F interval
#   1 - (1 - alpha) * qf(1 - a/2, n - 1, (n - 1)(k - 1)),  1 - (1 - alpha) * qf(a/2, ...)
# Items are SYNTHETIC (made up here with set.seed). Run: Rscript cronbach_alpha.R
# Writes cronbach_alpha.json next to this script (items and results, R version).
library(jsonlite)
make_items <- function(n, k, lo, hi, seed, n_missing) {
  set.seed(seed)
  latent <- rnorm(n)
  items <- sapply(seq_len(k), function(i) pmin(pmax(round((lo + hi) / 2 + latent + rnorm(n)), lo), hi))
  if (n_missing > 0) {
    for (j in seq_len(n_missing)) items[sample.int(n, 1), sample.int(k, 1)] <- NA
  }
  colnames(items) <- paste0("item_", seq_len(k))
  items
}
alpha_of <- function(items, level = 0.95) {
  x <- items[complete.cases(items), , drop = FALSE]
  n <- nrow(x); k <- ncol(x)
  item_var <- apply(x, 2, var)
  total_var <- var(rowSums(x))
  alpha <- k / (k - 1) * (1 - sum(item_var) / total_var)
  a <- 1 - level
  df1 <- n - 1; df2 <- (n - 1) * (k - 1)
  list(alpha = alpha, n = n,
       ci_lower = 1 - (1 - alpha) * qf(1 - a / 2, df1, df2),
       ci_upper = 1 - (1 - alpha) * qf(a / 2, df1, df2),
       level = level)
}
cases <- list(
  # the item counts and ranges of PHQ-9 (9 items 0-3), WSAS (5 items 0-8), GAD-7 (7 items 0-3)
  list(name = "PHQ-9", n = 120, k = 9, lo = 0, hi = 3, seed = 22, n_missing = 6, level = 0.95),
  list(name = "WSAS", n = 40, k = 5, lo = 0, hi = 8, seed = 7, n_missing = 0, level = 0.90),
  list(name = "GAD-7", n = 12, k = 7, lo = 0, hi = 3, seed = 3, n_missing = 2, level = 0.95)
)
out <- list(
  source = "base R var() and qf(): Cronbach (1951) alpha; Feldt, Woodruff & Salih (1987) interval",
  r_version = R.version.string,
  jsonlite_version = as.character(packageVersion("jsonlite")),
  cases = lapply(cases, function(cc) {
    items <- make_items(cc$n, cc$k, cc$lo, cc$hi, cc$seed, cc$n_missing)
    res <- alpha_of(items, cc$level)
    list(name = cc$name, level = cc$level,
         items = lapply(seq_len(ncol(items)), function(j) items[, j]),
         item_names = colnames(items),
         alpha = res$alpha, n = res$n, ci_lower = res$ci_lower, ci_upper = res$ci_upper)
  })
)
write(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
      file.path(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))),
                "cronbach_alpha.json"))
