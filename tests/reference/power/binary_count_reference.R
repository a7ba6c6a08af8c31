## Reference values for binary and count power (tests/design/test_binary_power.py).
##
## Sources:
##  - stats::power.prop.test (R): two proportions, pooled null variance (Fleiss), strict = FALSE;
##    for a cluster trial with design effect DE in both arms, power.prop.test(n = n / DE)
##    (Donner & Klar 2000; the variance of each arm's proportion inflated by DE);
##  - MKmisc::power.nb.test (Kohl; Zhu & Lakkis 2014, approaches 1-3): MKmisc needs limma
##    (Bioconductor, not in Debian), so only the function's file is sourced from a snapshot of
##    github:stamats/MKmisc (R/powerNbinomTest.R, MKmisc 1.9), extracted to /tmp/src/MKmisc by
##      git --git-dir=<fetch of stamats/MKmisc> archive HEAD R/powerNbinomTest.R | tar -x -C /tmp/src/MKmisc
##    The examples are those of MKmisc's help page, which reproduce Zhu & Lakkis Tables I-III.
## Run: Rscript binary_count_reference.R   (writes binary_count_reference.json next to it)
suppressPackageStartupMessages(library(jsonlite))
here <- local({
  a <- commandArgs(trailingOnly = FALSE); f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) dirname(normalizePath(f)) else getwd()
})
source("/tmp/src/MKmisc/R/powerNbinomTest.R")

prop <- list()
for (case in list(c(0.38, 0.288, 200), c(0.29, 0.38, 150), c(0.5, 0.6, 388), c(0.1, 0.05, 500))) {
  r <- power.prop.test(n = case[3], p1 = case[1], p2 = case[2], sig.level = 0.05)
  prop[[length(prop) + 1]] <- list(p0 = case[1], p1 = case[2], n = case[3], power = r$power)
}
## a cluster-randomised version: 20 groups of 10 per arm, ICC 0.05 -> DE = 1.45
clus <- list(p0 = 0.38, p1 = 0.288, n = 200, size = 10, icc = 0.05,
             power = power.prop.test(n = 200 / (1 + 9 * 0.05), p1 = 0.38, p2 = 0.288)$power)
nss <- list()
for (case in list(
  list(mu0 = 0.8, RR = 0.85, theta = 1 / 0.4, duration = 0.75, ratio = 1),
  list(mu0 = 1.4, RR = 1.15, theta = 1 / 1.5, duration = 0.75, ratio = 1),
  list(mu0 = 10, RR = 1.5, theta = 1 / 5, duration = 1, ratio = 3 / 2),
  list(mu0 = 5, RR = 2, theta = 1 / 0.5, duration = 1, ratio = 1))) {
  for (ap in 1:3) {
    ss <- power.nb.test(mu0 = case$mu0, RR = case$RR, theta = case$theta,
                        duration = case$duration, ssize.ratio = case$ratio, power = 0.8,
                        approach = ap)
    pw <- power.nb.test(n = 120, mu0 = case$mu0, RR = case$RR, theta = case$theta,
                        duration = case$duration, ssize.ratio = case$ratio, approach = ap)
    nss[[length(nss) + 1]] <- c(case, list(approach = ap, n_for_80 = ss$n,
                                           power_at_120 = pw$power))
  }
}
out <- list(power_prop_test = prop, cluster = clus, power_nb_test = nss,
            versions = list(R = R.version.string, MKmisc = "1.9 (R/powerNbinomTest.R)"))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           file.path(here, "binary_count_reference.json"))
cat("wrote binary_count_reference.json\n")
