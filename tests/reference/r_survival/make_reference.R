# Reference values for peerstats.survival (issue 17).
# Run from the repository root:  Rscript tests/reference/r_survival/make_reference.R
# Writes rossi.csv (carData's public teaching data set, factors as 0/1), trial.csv (a
# SYNTHETIC trial generated here: arm, age, site, delivery group with a gamma frailty, a
# competing event) and reference.json (R and package versions included).
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({
  library(survival); library(cmprsk); library(carData); library(survRM2); library(jsonlite)
})
out <- "tests/reference/r_survival"

# ---- Rossi (carData) -------------------------------------------------------------------
rossi <- carData::Rossi[, c("week", "arrest", "fin", "age", "race", "wexp", "mar", "paro", "prio")]
for (v in c("fin", "race", "wexp", "mar", "paro")) rossi[[v]] <- as.integer(rossi[[v]]) - 1L
write.csv(rossi, file.path(out, "rossi.csv"), row.names = FALSE)

cox_out <- function(fit) {
  s <- summary(fit)$coefficients
  r <- list(term = rownames(s), estimate = unname(coef(fit)),
            std_error = unname(sqrt(diag(fit$var))),
            loglik = unname(fit$loglik), iter = fit$iter)
  if (!is.null(fit$naive.var)) {
    r$robust_se <- unname(sqrt(diag(fit$var)))
    r$naive_se <- unname(sqrt(diag(fit$naive.var)))
    r$p_value <- unname(s[, "Pr(>|z|)"])
  } else {
    r$p_value <- unname(s[, ncol(s)])
  }
  ci <- summary(fit)$conf.int
  r$ci_lower <- unname(ci[, "lower .95"]); r$ci_upper <- unname(ci[, "upper .95"])
  r
}
f_rossi <- Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio
ref <- list()
ref$rossi_efron <- cox_out(coxph(f_rossi, data = rossi, ties = "efron"))
ref$rossi_breslow <- cox_out(coxph(f_rossi, data = rossi, ties = "breslow"))
ref$rossi_strata <- cox_out(coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = rossi))
z <- cox.zph(coxph(f_rossi, data = rossi))  # transform = "km"
ref$rossi_zph <- list(term = rownames(z$table), chisq = unname(z$table[, "chisq"]),
                      df = unname(z$table[, "df"]), p = unname(z$table[, "p"]))

# ---- a synthetic trial with delivery groups and a competing event -----------------------
set.seed(20261206)
n <- 400; ngroup <- 40
group <- rep(seq_len(ngroup), each = n / ngroup)
arm <- rep(c(0L, 1L), length.out = ngroup)[group]          # groups are nested in arms
site <- rep(c("A", "B", "C", "D"), each = 2, length.out = ngroup)[group]
age <- round(rnorm(n, 40, 12))
u <- rgamma(ngroup, shape = 2, rate = 2)[group]             # frailty, variance 0.5
rate1 <- 0.05 * u * exp(-0.4 * arm + 0.015 * (age - 40))     # readmission
rate2 <- 0.015 * exp(0.1 * arm)                               # death / moving abroad
t1 <- rexp(n, rate1); t2 <- rexp(n, rate2); cens <- pmin(runif(n, 6, 30), 24)
time <- pmin(t1, t2, cens)
status <- ifelse(time == t1, 1L, ifelse(time == t2, 2L, 0L))
time <- ceiling(time * 30.4375) / 30.4375 * 1.0               # whole days (ties), in months
time <- round(time, 6)
event <- as.integer(status == 1L)
trial <- data.frame(id = seq_len(n), arm = ifelse(arm == 1L, "peer", "control"), age, site,
                    group, time, status, event)
write.csv(trial, file.path(out, "trial.csv"), row.names = FALSE)
trial$arm <- factor(trial$arm, levels = c("control", "peer"))

ref$trial_efron <- cox_out(coxph(Surv(time, event) ~ arm + age, data = trial))
ref$trial_breslow <- cox_out(coxph(Surv(time, event) ~ arm + age, data = trial, ties = "breslow"))
ref$trial_cluster <- cox_out(coxph(Surv(time, event) ~ arm + age, data = trial, cluster = group))
ref$trial_strata_cluster <- cox_out(coxph(Surv(time, event) ~ arm + age + strata(site),
                                          data = trial, cluster = group))
ref$trial_strata <- cox_out(coxph(Surv(time, event) ~ arm + age + strata(site), data = trial))
fr <- coxph(Surv(time, event) ~ arm + age + frailty(group), data = trial)
ref$trial_frailty <- list(term = c("armpeer", "age"), estimate = unname(coef(fr)),
                          se = unname(sqrt(diag(fr$var))[1:2]),
                          se2 = unname(sqrt(diag(fr$var2))[1:2]),
                          # the variance R prints ("Variance of random effect"): the last theta
                          # fitted; fr$history[[1]]$theta is the search's next proposal
                          theta = unname(tail(fr$history[[1]]$history[, 1], 1)),
                          history = unname(as.list(as.data.frame(fr$history[[1]]$history))),
                          loglik = unname(fr$loglik),
                          df = unname(fr$df), frail = unname(fr$frail))
frb <- coxph(Surv(time, event) ~ arm + age + frailty(group), data = trial, ties = "breslow")
ref$trial_frailty_breslow <- list(estimate = unname(coef(frb)), se = unname(sqrt(diag(frb$var))[1:2]),
                                  theta = unname(tail(frb$history[[1]]$history[, 1], 1)))

# ---- Kaplan-Meier, log-rank -----------------------------------------------------------
km <- survfit(Surv(time, event) ~ arm, data = trial)   # conf.type = "log" default
tq <- summary(km)$table
times <- c(3, 6, 12, 18)
sk <- summary(km, times = times)
ref$km <- list(arm = c("control", "peer"), median = unname(tq[, "median"]),
               median_lower = unname(tq[, "0.95LCL"]), median_upper = unname(tq[, "0.95UCL"]),
               at_arm = sub("arm=", "", as.character(sk$strata)), at_time = sk$time,
               surv = sk$surv, std_err = sk$std.err, lower = sk$lower, upper = sk$upper,
               n_risk = sk$n.risk)
km_r <- survfit(Surv(week, arrest) ~ fin, data = rossi)
tr <- summary(km_r)$table
ref$km_rossi <- list(median = unname(tr[, "median"]), lower = unname(tr[, "0.95LCL"]),
                     upper = unname(tr[, "0.95UCL"]))
# an arm whose median is reached: all-events sample (medians with CI) from the trial, event=status>0
km2 <- survfit(Surv(time, status > 0) ~ arm, data = trial)
t2q <- summary(km2)$table
ref$km_any <- list(median = unname(t2q[, "median"]), lower = unname(t2q[, "0.95LCL"]),
                   upper = unname(t2q[, "0.95UCL"]))
# a tiny curve that reaches 0 (last observation an event): std.err NaN, CI NA, median CI
fs <- survfit(Surv(c(1, 2, 3, 4), c(1, 0, 1, 1)) ~ 1)
ss <- summary(fs)
ref$km_small <- list(time = ss$time, surv = ss$surv, std_err = ss$std.err, lower = ss$lower,
                     upper = ss$upper, median = unname(summary(fs)$table[c("median", "0.95LCL",
                                                                          "0.95UCL")]))
sd0 <- survdiff(Surv(time, event) ~ arm, data = trial)
sd1 <- survdiff(Surv(time, event) ~ arm + strata(site), data = trial)
ref$logrank <- list(statistic = sd0$chisq, df = 1, p_value = pchisq(sd0$chisq, 1, lower.tail = FALSE))
ref$logrank_strata <- list(statistic = sd1$chisq, df = 1,
                           p_value = pchisq(sd1$chisq, 1, lower.tail = FALSE))
ref$logrank_sites <- list(statistic = survdiff(Surv(time, event) ~ site, data = trial)$chisq,
                          strata_arm = survdiff(Surv(time, event) ~ site + strata(arm),
                                                data = trial)$chisq)
sdr <- survdiff(Surv(week, arrest) ~ fin, data = rossi)
ref$logrank_rossi <- list(statistic = sdr$chisq)

# ---- RMST (survRM2) --------------------------------------------------------------------
rm <- rmst2(trial$time, trial$event, as.integer(trial$arm == "peer"), tau = 18)
ref$rmst <- list(tau = 18,
                 rmst = c(rm$RMST.arm0$rmst[["Est."]], rm$RMST.arm1$rmst[["Est."]]),
                 se = c(rm$RMST.arm0$rmst[["se"]], rm$RMST.arm1$rmst[["se"]]),
                 unadjusted = unname(as.list(as.data.frame(rm$unadjusted.result))),
                 rows = rownames(rm$unadjusted.result), cols = colnames(rm$unadjusted.result))
rmr <- rmst2(rossi$week, rossi$arrest, rossi$fin, tau = 40)
ref$rmst_rossi <- list(rmst = c(rmr$RMST.arm0$rmst[["Est."]], rmr$RMST.arm1$rmst[["Est."]]),
                       se = c(rmr$RMST.arm0$rmst[["se"]], rmr$RMST.arm1$rmst[["se"]]),
                       unadjusted = unname(as.list(as.data.frame(rmr$unadjusted.result))))

# ---- competing risks (cmprsk) -------------------------------------------------------------
ci <- cuminc(trial$time, trial$status, trial$arm, cencode = 0)
tp <- timepoints(ci, times = times)
ref$cuminc <- list(rows = rownames(tp$est), times = times,
                   est = unname(as.list(as.data.frame(t(tp$est)))),
                   var = unname(as.list(as.data.frame(t(tp$var)))),
                   gray_stat = unname(ci$Tests[, "stat"]), gray_p = unname(ci$Tests[, "pv"]),
                   gray_df = unname(ci$Tests[, "df"]))
# four groups (site) and three causes (cause 2 split by age): Gray's test on 3 df
st3 <- trial$status; st3[trial$status == 2 & trial$age > 45] <- 3L
ci4 <- cuminc(trial$time, st3, trial$site)
tp4 <- timepoints(ci4, times = c(5, 10))
ref$cuminc_sites <- list(rows = rownames(tp4$est), est = unname(as.list(as.data.frame(t(tp4$est)))),
                         var = unname(as.list(as.data.frame(t(tp4$var)))),
                         gray_stat = unname(ci4$Tests[, "stat"]), gray_df = unname(ci4$Tests[, "df"]))
X <- cbind(armpeer = as.integer(trial$arm == "peer"), age = trial$age)
for (cause in 1:2) {
  cr <- crr(trial$time, trial$status, X, failcode = cause, cencode = 0)
  s <- summary(cr)$coef
  ref[[paste0("crr_cause", cause)]] <- list(
    term = colnames(X), estimate = unname(cr$coef), std_error = unname(sqrt(diag(cr$var))),
    p_value = unname(s[, "p-value"]), loglik = cr$loglik, converged = cr$converged)
}
# cause-specific Cox for cause 1 (other causes censored)
ref$cause_specific <- cox_out(coxph(Surv(time, status == 1) ~ arm + age, data = trial))

# ---- public teaching data of the survival package (rats: litter frailty; veteran) ----------
rats <- survival::rats
write.csv(rats, file.path(out, "rats.csv"), row.names = FALSE)
frr <- coxph(Surv(time, status) ~ rx + frailty(litter), data = rats)
ref$rats_frailty <- list(estimate = unname(coef(frr)), se = unname(sqrt(diag(frr$var))[1]),
                         se2 = unname(sqrt(diag(frr$var2))[1]),
                         theta = unname(tail(frr$history[[1]]$history[, 1], 1)),
                         loglik = unname(frr$loglik))
vet <- survival::veteran
write.csv(vet, file.path(out, "veteran.csv"), row.names = FALSE)
ref$veteran <- cox_out(coxph(Surv(time, status) ~ trt + celltype + karno + age, data = vet))
ref$veteran_km <- {
  k <- summary(survfit(Surv(time, status) ~ trt, data = vet))$table
  list(median = unname(k[, "median"]), lower = unname(k[, "0.95LCL"]),
       upper = unname(k[, "0.95UCL"]))
}

ref$versions <- list(R = R.version.string, survival = as.character(packageVersion("survival")),
                     cmprsk = as.character(packageVersion("cmprsk")),
                     survRM2 = as.character(packageVersion("survRM2")),
                     carData = as.character(packageVersion("carData")))
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(out, "reference.json"))
