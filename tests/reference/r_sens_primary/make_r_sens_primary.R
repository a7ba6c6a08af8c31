# Reference for issue 20.3: the imputation-based sensitivity analyses refit the PRIMARY model.
# The 20 completed datasets of the PEER example's mi-jr analysis (SYNTHETIC data; written by
# make_datasets.py from peerstats' own imputations) are analysed here with the primary model of
# analyses/peer_recovery.yaml fitted by nlme::lme: qpr15 ~ qpr15_baseline + site + arm * visit,
# a random delivery-group intercept in the peer arm only (pdDiag(~ 0 + delivered); controls are
# groups of one), a random participant intercept, residual variance by arm (varIdent), REML.
# The contrast peer - usual at each visit is pooled by Rubin's rules by hand (qbar, ubar, b,
# t = ubar + (1 + 1/m) b); mice::pool.scalar checks the hand pooling and gives the
# Barnard-Rubin df for a stated complete-data df (dfcom, one per visit, written below).
# Run from the repository root:  Rscript tests/reference/r_sens_primary/make_r_sens_primary.R
suppressMessages({library(nlme); library(mice); library(jsonlite)})
here <- "tests/reference/r_sens_primary"
d <- read.csv(file.path(here, "datasets.csv.gz"), stringsAsFactors = FALSE,
              colClasses = c(subject = "character", group = "character"))
d$arm <- factor(d$arm, levels = c("usual", "peer"))
d$visit <- factor(d$visit, levels = c("post", "fu3"))
d$site <- factor(d$site)
d$grp_all <- ifelse(d$delivered == 1 & !is.na(d$group) & d$group != "", d$group,
                    paste0("_single:", d$subject))
lctl <- lmeControl(maxIter = 500, msMaxIter = 500, niterEM = 100, tolerance = 1e-10,
                   msTol = 1e-12, returnObject = TRUE)
m <- max(d$imputation)
Q <- matrix(NA, m, 2); U <- matrix(NA, m, 2)
colnames(Q) <- colnames(U) <- c("post", "fu3")
for (i in seq_len(m)) {
  di <- d[d$imputation == i, ]
  fit <- lme(qpr15 ~ qpr15_baseline + site + arm * visit,
             random = list(grp_all = pdDiag(~ 0 + delivered), subject = ~ 1),
             weights = varIdent(form = ~ 1 | arm), data = di, method = "REML", control = lctl)
  b <- fixef(fit); V <- vcov(fit)
  L <- matrix(0, 2, length(b), dimnames = list(c("post", "fu3"), names(b)))
  L["post", "armpeer"] <- 1
  L["fu3", c("armpeer", "armpeer:visitfu3")] <- 1
  Q[i, ] <- as.numeric(L %*% b)
  U[i, ] <- diag(L %*% V %*% t(L))
}
qbar <- colMeans(Q); ubar <- colMeans(U); bvar <- apply(Q, 2, var)
tvar <- ubar + (1 + 1 / m) * bvar
# complete-data df per visit: peerstats' mean Satterthwaite df of the contrast on the completed
# data (nlme has no Satterthwaite df); Barnard-Rubin df from mice::pool.scalar with it
dfcom <- c(post = 80.76916341692947, fu3 = 80.76916341692947)
pooled <- lapply(c("post", "fu3"), function(v) {
  ps <- pool.scalar(Q[, v], U[, v], n = dfcom[[v]] + 1, k = 1)
  list(visit = v, estimate = qbar[[v]], ubar = ubar[[v]], b = bvar[[v]], t = tvar[[v]],
       std_error = sqrt(tvar[[v]]), dfcom = dfcom[[v]], df = ps$df,
       check_qbar = ps$qbar, check_t = ps$t)
})
out <- list(
  description = paste("mi-jr completed datasets of the PEER example (synthetic), primary",
                      "partially nested model by nlme::lme per dataset, Rubin's rules"),
  R = as.character(getRversion()),
  packages = sapply(c("nlme", "mice", "jsonlite"), function(p) as.character(packageVersion(p)),
                    simplify = FALSE),
  m = m,
  per_imputation = list(estimate = unname(split(Q, col(Q))), variance = unname(split(U, col(U)))),
  pooled = pooled
)
write_json(out, file.path(here, "r_sens_primary.json"), digits = NA, auto_unbox = TRUE,
           pretty = TRUE)
cat("written", file.path(here, "r_sens_primary.json"), "\n")
