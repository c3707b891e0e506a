# Interrupted time series of counts: glm (poisson with log(admissions) offset, and binomial) with level and slope
# change and Fourier seasonality; sandwich::NeweyWest(lag = L, prewhite = FALSE, adjust = FALSE); the events averted
# (counterfactual minus fitted, summed after the change) and its delta-method SE by hand; Durbin-Watson of the
# Pearson residuals by hand; Box.test(type = "Ljung-Box").
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages(library(sandwich))

its <- read_data("its")
changes <- c(seasonal = 36, short = 12)
for (ds in names(changes)) {
  x <- its[its$dataset == ds, ]
  t0 <- changes[[ds]]
  x$level_change <- as.numeric(x$time >= t0)
  x$slope_change <- (x$time - t0) * x$level_change
  x$sin_1 <- sin(2 * pi * x$month / 12); x$cos_1 <- cos(2 * pi * x$month / 12)
  seasonal <- ds == "seasonal"
  for (family in c("poisson", "binomial")) {
    rhs <- paste("time + level_change + slope_change", if (seasonal) "+ sin_1 + cos_1" else "")
    fit <- if (family == "poisson") {
      glm(as.formula(paste("deaths ~", rhs, "+ offset(log(admissions))")), family = poisson, data = x,
          control = glm.control(epsilon = 1e-14, maxit = 100))
    } else {
      glm(as.formula(paste("cbind(deaths, admissions - deaths) ~", rhs)), family = binomial, data = x,
          control = glm.control(epsilon = 1e-14, maxit = 100))
    }
    for (lag in c(1, 3)) {
      v <- NeweyWest(fit, lag = lag, prewhite = FALSE, adjust = FALSE)
      label <- sprintf("%s_%s_lag%d", ds, family, lag)
      b <- coef(fit); se <- sqrt(diag(v))
      names(b)[1:4] <- names(se)[1:4] <- c("intercept", "pre_trend", "level_change", "slope_change")
      for (term in names(b)) put_row(label, term, estimate = b[[term]], std_error = se[[term]],
                                     p_value = 2 * pnorm(-abs(b[[term]] / se[[term]])))
      X <- model.matrix(fit); Xc <- X; Xc[, c("level_change", "slope_change")] <- 0
      after <- x$time >= t0
      eta <- as.numeric(X %*% coef(fit)); etac <- as.numeric(Xc %*% coef(fit))
      if (family == "poisson") {
        mu <- x$admissions * exp(eta); muc <- x$admissions * exp(etac); dmu <- mu; dmuc <- muc
      } else {
        p <- plogis(eta); pc <- plogis(etac)
        mu <- x$admissions * p; muc <- x$admissions * pc
        dmu <- mu * (1 - p); dmuc <- muc * (1 - pc)
      }
      averted <- sum((muc - mu)[after])
      g <- colSums(dmuc[after] * Xc[after, , drop = FALSE]) - colSums(dmu[after] * X[after, , drop = FALSE])
      se_a <- sqrt(as.numeric(t(g) %*% v %*% g))
      put_row(label, "events_averted", estimate = averted, std_error = se_a,
              conf_low = averted - qnorm(0.975) * se_a, conf_high = averted + qnorm(0.975) * se_a)
      r <- residuals(fit, type = "pearson")
      put_row(label, "durbin_watson", estimate = sum(diff(r)^2) / sum(r^2))
      box <- Box.test(r, lag = lag, type = "Ljung-Box")
      put_row(label, "ljung_box", statistic = box$statistic, p_value = box$p.value)
    }
  }
}
write_results("its")
