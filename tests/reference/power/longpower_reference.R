# Reference values for peerstats' analytic power (issue 11) from the R package longpower
# (Donohue, Edland & Hu; Lu, Luo & Chen 2008 formula (3), the MMRM with monotone dropout).
# longpower is installed from its GitHub snapshot (github:mcdonohue/longpower, commit
# 189c4b023aa3cc8029ecf9401323cfdbe567b0ae, version 1.0.27):
#   git archive the tree to a folder, then R CMD INSTALL -l <lib> <folder>
# Run: R_LIBS=<lib> Rscript longpower_reference.R   (writes longpower_reference.json here)
# Inputs are those of longpower's own examples: man/power.mmrm.Rd (Ra compound symmetry 0.25,
# ra = 1, .9, .8, .7, sigmaa = 1, delta = 0.5) and man/power.mmrm.ar1.Rd / tests/testthat/tests.R
# (Lu, Luo & Chen 2008 Table 2: phi for AR(1), J = 2, 4 visits; Table 5 retention by arm).
suppressMessages(library(longpower))
library(jsonlite)

out <- list(
  source = "longpower 1.0.27 (github:mcdonohue/longpower@189c4b0), R/power_mmrm.R",
  r_version = R.version.string,
  longpower_version = as.character(packageVersion("longpower"))
)

# 1. man/power.mmrm.Rd examples: CS 0.25 over 4 visits, retention 1, .9, .8, .7
Ra <- matrix(0.25, nrow = 4, ncol = 4); diag(Ra) <- 1
ra <- c(1, 0.90, 0.80, 0.70)
ex <- list()
r <- power.mmrm(Ra = Ra, ra = ra, sigmaa = 1, delta = 0.5, power = 0.80)
ex$n_for_power_0.8 <- list(n1 = r$n1, n2 = r$n2)
r <- power.mmrm(N = 174, Ra = Ra, ra = ra, sigmaa = 1, delta = 0.5)
ex$power_N174 <- r$power
r <- power.mmrm(N = 174, Ra = Ra, ra = ra, sigmaa = 1, power = 0.80)
ex$delta_N174 <- r$delta
r <- power.mmrm(Ra = Ra, ra = ra, sigmaa = 1, delta = 0.5, power = 0.80, lambda = 2)
ex$n_for_power_0.8_lambda2 <- list(n1 = r$n1, n2 = r$n2)
r <- power.mmrm(N = 174, Ra = Ra, ra = ra, sigmaa = 1, delta = 0.5, lambda = 2)
ex$power_N174_lambda2 <- r$power
out$power_mmrm_cs <- ex

# 2. Lu, Luo & Chen (2008) Table 2 as in man/power.mmrm.ar1.Rd: phi1 for AR(1)
tab <- list()
for (J in c(2, 4)) for (aJ in (1:4) / 10) for (p1J in c(0, c(1, 3, 5, 7, 9) / 10)) {
  rr <- seq(1, 1 - aJ, length = J)
  phi <- power.mmrm.ar1(rho = p1J^(1 / (J - 1)), ra = rr, sigmaa = 1, lambda = 1,
                        times = 1:J, delta = 1, sig.level = 0.05, power = 0.80)$phi1
  tab[[length(tab) + 1]] <- list(J = J, aJ = aJ, p1J = p1J, rho = p1J^(1 / (J - 1)), phi = phi)
}
out$llc_table2_phi <- tab

# 3. unequal retention by arm (Table 5 of Lu, Luo & Chen as in man/power.mmrm.ar1.Rd), AR(1)
#    rho 0.6; power for integer arm sizes Na = 100 (retention ra), Nb = 140 (retention rb)
ra5 <- c(100, 76, 63, 52) / 100
rb5 <- c(100, 87, 81, 78) / 100
R5 <- 0.6^abs(outer(1:4, 1:4, "-"))
r <- power.mmrm(N = 240, Ra = R5, ra = ra5, sigmaa = 1, Rb = R5, rb = rb5,
                lambda = 100 / 140, delta = 0.5)
out$unequal_retention <- list(Na = 100, Nb = 140, rho = 0.6, ra = ra5, rb = rb5, delta = 0.5,
                              power = r$power, n1 = r$n1, n2 = r$n2)

write_json(out, "longpower_reference.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
cat("written longpower_reference.json\n")
