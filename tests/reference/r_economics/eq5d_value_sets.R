# Reference utilities for every EQ-5D level combination from the R package `eq5d`
# (Morton & Nijjar; github fragla/eq5d, installed from source into /work/rlib).
# Writes eq5d_value_sets.json: {set_id: {profile: utility}} unrounded (digits = 10), plus
# the rounded-to-3-decimals output the package prints by default.
# Run: Rscript tests/reference/r_economics/eq5d_value_sets.R (from the repository root)
.libPaths(c("/work/rlib", .libPaths()))
suppressPackageStartupMessages({library(eq5d); library(jsonlite)})
sets <- list(
  "uk-3l-dolan1997"        = list(version = "3L", type = "TTO", country = "UK"),
  "se-3l-burstrom2014"     = list(version = "3L", type = "TTO", country = "Sweden"),
  "dk-5l-jensen2021"       = list(version = "5L", type = "VT",  country = "Denmark"),
  "se-5l-burstrom2020"     = list(version = "5L", type = "VT",  country = "Sweden_2020"),
  "se-5l-sun2022"          = list(version = "5L", type = "VT",  country = "Sweden_2022"),
  "uk-5l-devlin2018"       = list(version = "5L", type = "VT",  country = "England"),
  "uk-crosswalk-vanhout2012" = list(version = "5L", type = "CW", country = "UK")
)
grid <- function(levels) {
  g <- expand.grid(AD = 1:levels, PD = 1:levels, UA = 1:levels, SC = 1:levels, MO = 1:levels)
  g[, c("MO", "SC", "UA", "PD", "AD")]
}
out <- list()
for (id in names(sets)) {
  s <- sets[[id]]
  g <- grid(if (s$version == "3L") 3 else 5)
  profiles <- apply(g, 1, paste, collapse = "")
  u <- eq5d(g, version = s$version, type = s$type, country = s$country, digits = 10)
  r3 <- eq5d(g, version = s$version, type = s$type, country = s$country, digits = 3)
  out[[id]] <- list(eq5d_call = s, profiles = unname(profiles), utility = unname(u),
                    utility_3dp = unname(r3))
}
meta <- list(R = R.version.string, eq5d = as.character(packageVersion("eq5d")),
             source = "github fragla/eq5d bfdc7ca014bda447b38e5f4e68823b9ba4638a02")
write_json(list(meta = meta, sets = out), "tests/reference/r_economics/eq5d_value_sets.json",
           digits = NA, auto_unbox = TRUE)
