# Ranks and ordered outcomes: quantile(type = 1..9), wilcox.test(conf.int = TRUE), prop.trend.test,
# MASS::polr. The comparison is after vs before, as in analysis.stats.ranks.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages(library(MASS))

# wilcox.test's own asymptotic interval code (R 4.2, stats:::wilcox.test.default), with uniroot's
# tolerance tightened from 1e-4 to 1e-10 so that the reference locates the jump of the step function.
hl_asymptotic <- function(x, y, conf.level = 0.95, tol = 1e-10) {
  n.x <- length(x); n.y <- length(y); alpha <- 1 - conf.level
  mumin <- min(x) - max(y); mumax <- max(x) - min(y)
  wdiff <- function(d, zq) {
    dr <- rank(c(x - d, y))
    NTIES.CI <- table(dr)
    dz <- sum(dr[seq_along(x)]) - n.x * (n.x + 1) / 2 - n.x * n.y / 2
    CORRECTION.CI <- sign(dz) * 0.5
    SIGMA.CI <- sqrt((n.x * n.y / 12) * ((n.x + n.y + 1) - sum(NTIES.CI^3 - NTIES.CI) / ((n.x + n.y) * (n.x + n.y - 1))))
    (dz - CORRECTION.CI) / SIGMA.CI - zq
  }
  root <- function(zq) {
    f.lower <- wdiff(mumin, zq); f.upper <- wdiff(mumax, zq)
    if (f.lower <= 0) return(mumin)
    if (f.upper >= 0) return(mumax)
    uniroot(wdiff, lower = mumin, upper = mumax, f.lower = f.lower, f.upper = f.upper, tol = tol, zq = zq)$root
  }
  c(root(qnorm(alpha / 2, lower.tail = FALSE)), root(qnorm(alpha / 2)))
}

d <- read_data("ranks")
for (ds in unique(d$dataset)) {
  before <- d$value[d$dataset == ds & d$group == "before"]
  after <- d$value[d$dataset == ds & d$group == "after"]
  for (group in c("before", "after")) {
    v <- if (group == "before") before else after
    for (type in 1:9) {
      q <- quantile(v, c(0.25, 0.5, 0.75), type = type, names = FALSE)
      put_row(ds, sprintf("quantile_%s_type%d", group, type), q25 = q[1], q50 = q[2], q75 = q[3])
    }
  }
  wt <- suppressWarnings(wilcox.test(after, before, conf.int = TRUE, correct = TRUE))
  exact <- length(unique(c(after, before))) == length(c(after, before)) && length(after) < 50 && length(before) < 50
  put_row(ds, "mann_whitney", statistic = wt$statistic, p_value = wt$p.value, exact = as.numeric(exact))
  put_row(ds, "hodges_lehmann_wilcox_test", estimate = wt$estimate, conf_low = wt$conf.int[1], conf_high = wt$conf.int[2])
  tight <- if (exact) as.numeric(wt$conf.int) else hl_asymptotic(after, before)
  put_row(ds, "hodges_lehmann", estimate = median(outer(after, before, "-")), conf_low = tight[1], conf_high = tight[2])
  # the two middle pairwise differences: R's asymptotic estimate may fall anywhere between them
  diffs <- sort(outer(after, before, "-"))
  m <- length(diffs)
  put_row(ds, "middle_differences", conf_low = diffs[floor((m + 1) / 2)], conf_high = diffs[ceiling((m + 1) / 2)])
}

tr <- read_data("trend")
for (ds in unique(tr$dataset)) {
  x <- tr[tr$dataset == ds, ]
  pt <- prop.trend.test(x$count_after, x$count_before + x$count_after, score = x$score)
  put_row(ds, "trend", statistic = pt$statistic, df = pt$parameter, p_value = pt$p.value)
}

polr_rows <- function(ds, fit) {
  co <- coef(summary(fit))
  for (term in rownames(co)) {
    put_row(ds, paste0("polr:", term), estimate = co[term, "Value"], std_error = co[term, "Std. Error"])
  }
  put(ds, "polr", "loglik", as.numeric(logLik(fit)))
}

harm <- tr[tr$dataset == "harm", ]
harm_long <- data.frame(
  y = factor(c(rep(harm$score, harm$count_before), rep(harm$score, harm$count_after)), ordered = TRUE),
  after = c(rep(0, sum(harm$count_before)), rep(1, sum(harm$count_after)))
)
polr_rows("harm", polr(y ~ after, data = harm_long, Hess = TRUE))

od <- read_data("ordinal")
od$y <- factor(od$y, ordered = TRUE)
polr_rows("covariate", polr(y ~ after + x, data = od, Hess = TRUE))

write_results("ranks")
