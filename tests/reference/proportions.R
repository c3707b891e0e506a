# Two proportions (after vs before): R's own tests, and the closed-form intervals written out by hand
# from their published formulas, independently of the Python code.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))

z <- qnorm(0.975)

wilson <- function(x, n) {
  p <- x / n
  centre <- (p + z^2 / (2 * n)) / (1 + z^2 / n)
  half <- z * sqrt(p * (1 - p) / n + z^2 / (4 * n^2)) / (1 + z^2 / n)
  c(centre - half, centre + half)
}

# fisher.test's conditional MLE and exact limits, its own code, with uniroot's tolerance tightened from
# the default (about 1.2e-4) to 1e-12 so that the reference is accurate to rounding.
exact_or <- function(tab, conf = 0.95, tol = 1e-12) {
  m <- sum(tab[, 1]); n <- sum(tab[, 2]); k <- sum(tab[1, ]); x <- tab[1, 1]
  lo <- max(0, k - n); hi <- min(k, m)
  support <- lo:hi
  logdc <- dhyper(support, m, n, k, log = TRUE)
  dnhyper <- function(ncp) { d <- logdc + log(ncp) * support; d <- exp(d - max(d)); d / sum(d) }
  mnhyper <- function(ncp) { if (ncp == 0) return(lo); if (ncp == Inf) return(hi); sum(support * dnhyper(ncp)) }
  pnhyper <- function(q, ncp, upper.tail = FALSE) {
    if (ncp == 1) return(if (upper.tail) phyper(x - 1, m, n, k, lower.tail = FALSE) else phyper(x, m, n, k))
    if (ncp == 0) return(as.numeric(if (upper.tail) q <= lo else q >= lo))
    if (ncp == Inf) return(as.numeric(if (upper.tail) q <= hi else q >= hi))
    sum(dnhyper(ncp)[if (upper.tail) support >= q else support <= q])
  }
  root <- function(f, interval) uniroot(f, interval, tol = tol)$root
  mle <- if (x == lo) 0 else if (x == hi) Inf else {
    mu <- mnhyper(1)
    if (mu > x) root(function(t) mnhyper(t) - x, c(0, 1))
    else if (mu < x) 1 / root(function(t) mnhyper(1 / t) - x, c(.Machine$double.eps, 1))
    else 1
  }
  alpha <- (1 - conf) / 2
  upper <- if (x == hi) Inf else {
    p <- pnhyper(x, 1)
    if (p < alpha) root(function(t) pnhyper(x, t) - alpha, c(0, 1))
    else if (p > alpha) 1 / root(function(t) pnhyper(x, 1 / t) - alpha, c(.Machine$double.eps, 1))
    else 1
  }
  lower <- if (x == lo) 0 else {
    p <- pnhyper(x, 1, upper.tail = TRUE)
    if (p > alpha) root(function(t) pnhyper(x, t, upper.tail = TRUE) - alpha, c(0, 1))
    else if (p < alpha) 1 / root(function(t) pnhyper(x, 1 / t, upper.tail = TRUE) - alpha, c(.Machine$double.eps, 1))
    else 1
  }
  c(mle, lower, upper)
}

d <- read_data("proportions")
for (i in seq_len(nrow(d))) {
  r <- d[i, ]
  ds <- r$dataset
  eb <- r$events_before; nb <- r$n_before; ea <- r$events_after; na <- r$n_after
  pa <- ea / na; pb <- eb / nb

  # Wilson by hand, checked against prop.test without correction (which inverts the score test)
  wb <- wilson(eb, nb); wa <- wilson(ea, na)
  stopifnot(isTRUE(all.equal(wb, as.numeric(suppressWarnings(prop.test(eb, nb, correct = FALSE))$conf.int), tolerance = 1e-12)))
  put_row(ds, "proportion_before", estimate = pb, std_error = sqrt(pb * (1 - pb) / nb), conf_low = wb[1], conf_high = wb[2])
  put_row(ds, "proportion_after", estimate = pa, std_error = sqrt(pa * (1 - pa) / na), conf_low = wa[1], conf_high = wa[2])

  # Newcombe (1998) method 10, after minus before
  rd <- pa - pb
  rd_low <- rd - sqrt((pa - wa[1])^2 + (wb[2] - pb)^2)
  rd_high <- rd + sqrt((wa[2] - pa)^2 + (pb - wb[1])^2)
  put_row(ds, "risk_difference", estimate = rd, std_error = sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb),
          conf_low = rd_low, conf_high = rd_high)

  # NNT = 1 / (pb - pa); limits are reciprocals of the reflected RD limits (Altman 1998)
  benefit <- c(-rd_high, -rd_low)
  nnt_limits <- if (benefit[1] > 0 || benefit[2] < 0) sort(1 / benefit) else c(1 / benefit[2], 1 / benefit[1])
  put_row(ds, "nnt", estimate = if (rd != 0) 1 / (pb - pa) else NaN, conf_low = nnt_limits[1], conf_high = nnt_limits[2])

  tab <- matrix(c(ea, eb, na - ea, nb - eb), nrow = 2, dimnames = list(c("after", "before"), c("event", "none")))

  # Woolf, with Haldane-Anscombe +0.5 to every cell when a cell is zero
  h <- if (any(tab == 0)) tab + 0.5 else tab
  log_or <- log(h[1, 1] * h[2, 2] / (h[1, 2] * h[2, 1]))
  se <- sqrt(sum(1 / h))
  put_row(ds, "odds_ratio_woolf", estimate = exp(log_or), std_error = se, statistic = log_or / se,
          p_value = 2 * pnorm(-abs(log_or / se)), conf_low = exp(log_or - z * se), conf_high = exp(log_or + z * se))

  # relative risk, log (Katz) interval, +0.5 to every cell when either period has no events
  h <- if (ea == 0 || eb == 0) tab + 0.5 else tab
  log_rr <- log((h[1, 1] / sum(h[1, ])) / (h[2, 1] / sum(h[2, ])))
  se <- sqrt(1 / h[1, 1] - 1 / sum(h[1, ]) + 1 / h[2, 1] - 1 / sum(h[2, ]))
  put_row(ds, "relative_risk", estimate = exp(log_rr), std_error = se, statistic = log_rr / se,
          p_value = 2 * pnorm(-abs(log_rr / se)), conf_low = exp(log_rr - z * se), conf_high = exp(log_rr + z * se))

  for (correct in c(FALSE, TRUE)) {
    ct <- suppressWarnings(chisq.test(tab, correct = correct))
    put_row(ds, if (correct) "chi2_corrected" else "chi2", statistic = ct$statistic, df = ct$parameter,
            p_value = ct$p.value)
  }
  put(ds, "chi2", "min_expected", min(outer(rowSums(tab), colSums(tab)) / sum(tab)))

  ft <- fisher.test(tab)
  put_row(ds, "fisher", p_value = ft$p.value)
  tight <- exact_or(tab)
  stopifnot(isTRUE(all.equal(tight, as.numeric(c(ft$estimate, ft$conf.int)), tolerance = 1e-3)))
  put_row(ds, "odds_ratio_exact", estimate = tight[1], p_value = ft$p.value, conf_low = tight[2], conf_high = tight[3])
  # what fisher.test itself prints, at uniroot's default tolerance
  put_row(ds, "odds_ratio_exact_fisher_test", estimate = ft$estimate, conf_low = ft$conf.int[1], conf_high = ft$conf.int[2])
}
write_results("proportions")
