# Interrupted time series of counts: glm (poisson with log(admissions) offset, and binomial) with level and slope
# change and Fourier seasonality; sandwich::NeweyWest(lag = L, prewhite = FALSE, adjust = FALSE); the events averted
# (counterfactual minus fitted, summed after the change) and its delta-method SE by hand; Durbin-Watson of the
# Pearson residuals by hand; Box.test(type = "Ljung-Box"). A controlled series (its_controlled): the same glm with
# the group interactions, its covariance both by hand (the scores summed per month, then Newey-West: Driscoll and
# Kraay) and by sandwich::vcovPL(cluster = ~group, order.by = ~time, adjust = FALSE), and the events averted over
# the intervention series with the control series' change as its counterfactual. A weekly series (its_weekly):
# Fourier terms of period 365.25 / 7 weeks in the week count, Newey-West lags in weeks.
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
x <- read_data("its_controlled")
x <- x[order(x$group, x$time), ]
t0 <- 24
x$level_change <- as.numeric(x$time >= t0)
x$slope_change <- (x$time - t0) * x$level_change
x$sin_1 <- sin(2 * pi * x$month / 12); x$cos_1 <- cos(2 * pi * x$month / 12)
x$group_pre_trend <- x$group * x$time
x$level_change_difference <- x$group * x$level_change
x$slope_change_difference <- x$group * x$slope_change
for (family in c("poisson", "binomial")) {
  rhs <- "time + level_change + slope_change + group + group_pre_trend + level_change_difference +
          slope_change_difference + sin_1 + cos_1"
  fit <- if (family == "poisson") {
    glm(as.formula(paste("deaths ~", rhs, "+ offset(log(admissions))")), family = poisson, data = x,
        control = glm.control(epsilon = 1e-14, maxit = 100))
  } else {
    glm(as.formula(paste("cbind(deaths, admissions - deaths) ~", rhs)), family = binomial, data = x,
        control = glm.control(epsilon = 1e-14, maxit = 100))
  }
  for (lag in c(1, 3)) {
    U <- rowsum(estfun(fit), x$time)  # the two series' scores summed per month, in time order
    meat <- crossprod(U)
    for (l in seq_len(lag)) {
      G <- t(U[-(1:l), , drop = FALSE]) %*% U[1:(nrow(U) - l), , drop = FALSE]
      meat <- meat + (1 - l / (lag + 1)) * (G + t(G))
    }
    v <- vcov(fit) %*% meat %*% vcov(fit)
    pl <- vcovPL(fit, cluster = ~group, order.by = ~time, lag = lag, adjust = FALSE)
    label <- sprintf("controlled_%s_lag%d", family, lag)
    b <- coef(fit); se <- sqrt(diag(v))
    names(b)[1:2] <- names(se)[1:2] <- c("intercept", "pre_trend")
    for (term in names(b)) put_row(label, term, estimate = b[[term]], std_error = se[[term]],
                                   p_value = 2 * pnorm(-abs(b[[term]] / se[[term]])))
    put_row(label, "vcovPL", max_relative_difference = max(abs(pl - v) / abs(v)))
    X <- model.matrix(fit); Xc <- X; Xc[, c("level_change_difference", "slope_change_difference")] <- 0
    after <- x$time >= t0 & x$group == 1
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
    put_row(label, "events_averted", estimate = averted, std_error = se_a)
    r <- residuals(fit, type = "pearson")[x$group == 1]
    put_row(label, "durbin_watson", estimate = sum(diff(r)^2) / sum(r^2))
    box <- Box.test(r, lag = lag, type = "Ljung-Box")
    put_row(label, "ljung_box", statistic = box$statistic, p_value = box$p.value)
  }
}
# A weekly series (its_weekly): Fourier terms of period 365.25 / 7 weeks in the week count, two harmonics;
# NeweyWest lags in weeks.
x <- read_data("its_weekly")
t0 <- 104
x$level_change <- as.numeric(x$time >= t0)
x$slope_change <- (x$time - t0) * x$level_change
for (k in 1:2) {
  x[[paste0("sin_", k)]] <- sin(2 * pi * k * x$time / (365.25 / 7))
  x[[paste0("cos_", k)]] <- cos(2 * pi * k * x$time / (365.25 / 7))
}
rhs <- "time + level_change + slope_change + sin_1 + cos_1 + sin_2 + cos_2"
for (family in c("poisson", "binomial")) {
  fit <- if (family == "poisson") {
    glm(as.formula(paste("deaths ~", rhs, "+ offset(log(admissions))")), family = poisson, data = x,
        control = glm.control(epsilon = 1e-14, maxit = 100))
  } else {
    glm(as.formula(paste("cbind(deaths, admissions - deaths) ~", rhs)), family = binomial, data = x,
        control = glm.control(epsilon = 1e-14, maxit = 100))
  }
  for (lag in c(2, 8)) {
    v <- NeweyWest(fit, lag = lag, prewhite = FALSE, adjust = FALSE)
    label <- sprintf("weekly_%s_lag%d", family, lag)
    b <- coef(fit); se <- sqrt(diag(v))
    names(b)[1:2] <- names(se)[1:2] <- c("intercept", "pre_trend")
    for (term in names(b)) put_row(label, term, estimate = b[[term]], std_error = se[[term]])
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
    put_row(label, "events_averted", estimate = averted, std_error = sqrt(as.numeric(t(g) %*% v %*% g)))
    r <- residuals(fit, type = "pearson")
    put_row(label, "durbin_watson", estimate = sum(diff(r)^2) / sum(r^2))
    box <- Box.test(r, lag = lag, type = "Ljung-Box")
    put_row(label, "ljung_box", statistic = box$statistic, p_value = box$p.value)
  }
}
write_results("its")
