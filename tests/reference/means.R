# Differences in means: t.test(after, before, var.equal = FALSE) (Welch), and t.test(x) for each mean.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))

welch_rows <- function(ds, before, after, conf.level = 0.95) {
  for (group in list(list("mean_before", before), list("mean_after", after))) {
    x <- group[[2]]
    one <- t.test(x, conf.level = conf.level)
    put_row(ds, group[[1]], estimate = mean(x), std_error = one$stderr, conf_low = one$conf.int[1],
            conf_high = one$conf.int[2], df = one$parameter, n = length(x))
  }
  w <- t.test(after, before, var.equal = FALSE, conf.level = conf.level)
  put_row(ds, "mean_difference", estimate = w$estimate[[1]] - w$estimate[[2]], std_error = w$stderr,
          statistic = w$statistic, p_value = w$p.value, conf_low = w$conf.int[1], conf_high = w$conf.int[2],
          df = w$parameter, n = length(after) + length(before))
}

# two-sample data of ranks.R (skewed, integer, tied, tiny, completely shifted)
r <- read_data("ranks")
for (ds in unique(r$dataset)) {
  x <- r[r$dataset == ds, ]
  welch_rows(ds, x$value[x$group == "before"], x$value[x$group == "after"])
}
x <- r[r$dataset == "asymptotic_large", ]
welch_rows("asymptotic_large_90", x$value[x$group == "before"], x$value[x$group == "after"], conf.level = 0.90)

# the study's MAI change from admission to discharge, patients aged 65 and over (NA: no MAI scored)
p <- read_data("study_patients")
x <- p[p$age_65_plus == 1 & !is.na(p$mai_change_discharge), ]
welch_rows("study_mai_change", x$mai_change_discharge[x$after == 0], x$mai_change_discharge[x$after == 1])
write_results("means")
