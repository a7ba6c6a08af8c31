# The tipping-point computation of the bundled PEER analysis (SYNTHETIC data) with nlme::lme:
# for each of the 13 deltas, the primary partially nested model on each of the 20 completed
# datasets (260 fits: random delivery-group intercept in the peer arm only, random participant
# intercept, residual variance by arm, REML), the peer - usual contrast at the primary visit
# and Rubin's rules. Called by bench_sensitivity_fast.py with the CSV of the 260 datasets;
# prints the seconds of the fits and pooling (after reading the data) and the pooled table.
suppressMessages({library(nlme); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE,
              colClasses = c(subject = "character", group = "character"))
d$arm <- factor(d$arm, levels = c("usual", "peer"))
d$visit <- factor(d$visit, levels = c("post", "fu3"))
d$site <- factor(d$site)
d$grp_all <- ifelse(d$delivered == 1 & !is.na(d$group) & d$group != "", d$group,
                    paste0("_single:", d$subject))
sets <- split(d, list(d$cell, d$imputation), drop = TRUE)
t0 <- proc.time()[["elapsed"]]
rows <- lapply(sort(unique(d$cell)), function(k) {
  ms <- sort(unique(d$imputation))
  est <- var <- numeric(length(ms))
  for (i in seq_along(ms)) {
    di <- sets[[paste(k, ms[i], sep = ".")]]
    fit <- lme(qpr15 ~ qpr15_baseline + site + arm * visit,
               random = list(grp_all = pdDiag(~ 0 + delivered), subject = ~ 1),
               weights = varIdent(form = ~ 1 | arm), data = di, method = "REML",
               control = lmeControl(returnObject = TRUE))
    b <- fixef(fit)
    est[i] <- b[["armpeer"]]   # peer - usual at the reference visit (post)
    var[i] <- vcov(fit)["armpeer", "armpeer"]
  }
  m <- length(ms)
  t <- mean(var) + (1 + 1 / m) * var(est)
  data.frame(cell = k, estimate = mean(est), std_error = sqrt(t))
})
seconds <- proc.time()[["elapsed"]] - t0
cat(toJSON(list(seconds = seconds, table = do.call(rbind, rows),
                R = as.character(getRversion()),
                nlme = as.character(packageVersion("nlme"))),
           digits = NA, auto_unbox = TRUE), "\n")
