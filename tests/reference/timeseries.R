# Interrupted time series: lm + sandwich::NeweyWest with every setting explicit, lmtest-style t tests
# on the residual df; p-chart limits written out by hand.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages(library(sandwich))

ts <- read_data("timeseries")
contrasts <- list(intercept = c(1, 0, 0, 0), pre_trend = c(0, 1, 0, 0), level_change = c(0, 0, 1, 0),
                  slope_change = c(0, 0, 0, 1), post_trend = c(0, 1, 0, 1))
for (ds in unique(ts$dataset)) {
  x <- ts[ts$dataset == ds, ]
  t0 <- min(x$month[x$post == 1])
  x$time_after <- (x$month - t0) * x$post
  for (weighted in c(FALSE, TRUE)) {
    fit <- if (weighted) lm(proportion ~ month + post + time_after, data = x, weights = n)
           else lm(proportion ~ month + post + time_after, data = x)
    for (lag in c(1, 2, 3)) {
      v <- NeweyWest(fit, lag = lag, prewhite = FALSE, adjust = FALSE)
      label <- sprintf("%s_%s_lag%d", ds, if (weighted) "wls" else "ols", lag)
      for (term in names(contrasts)) {
        k <- contrasts[[term]]
        est <- sum(k * coef(fit)); se <- sqrt(as.numeric(t(k) %*% v %*% k))
        q <- qt(0.975, fit$df.residual)
        put_row(label, term, estimate = est, std_error = se, statistic = est / se, df = fit$df.residual,
                p_value = 2 * pt(-abs(est / se), fit$df.residual), conf_low = est - q * se, conf_high = est + q * se)
      }
    }
  }
  # p-chart by period: pooled centre line, 3-sigma limits with each month's n, clipped to [0, 1]
  for (period in c(0, 1)) {
    y <- x[x$post == period, ]
    centre <- sum(y$events) / sum(y$n)
    for (i in seq_len(nrow(y))) {
      sigma <- sqrt(centre * (1 - centre) / y$n[i])
      put_row(paste0(ds, "_pchart"), as.character(y$month[i]), estimate = y$events[i] / y$n[i], std_error = sigma,
              conf_low = max(0, centre - 3 * sigma), conf_high = min(1, centre + 3 * sigma), centre_line = centre)
    }
  }
}
write_results("timeseries")
