# Regression for independent observations: glm (binomial, poisson), MASS::glm.nb; Hosmer-Lemeshow and
# Nagelkerke's R-squared written out by hand from their formulas.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages(library(MASS))

# Hosmer & Lemeshow (1980) by deciles of risk, breaks as ResourceSelection::hoslem.test cuts them
hosmer_lemeshow <- function(y, p, g = 10) {
  breaks <- unique(quantile(p, probs = seq(0, 1, 1 / g), type = 7))
  group <- cut(p, breaks = breaks, include.lowest = TRUE)
  o <- tapply(y, group, sum); e <- tapply(p, group, sum); n <- tapply(p, group, length)
  keep <- !is.na(n)
  chisq <- sum((o[keep] - e[keep])^2 / (e[keep] * (1 - e[keep] / n[keep])))
  df <- sum(keep) - 2
  c(statistic = chisq, df = df, p_value = if (df >= 1) pchisq(chisq, df, lower.tail = FALSE) else NaN)
}

nagelkerke <- function(fit) {
  n <- length(fit$y)
  ll1 <- as.numeric(logLik(fit))
  ll0 <- -fit$null.deviance / 2  # 0/1 outcome: the saturated log-likelihood is 0
  (1 - exp(2 * (ll0 - ll1) / n)) / (1 - exp(2 * ll0 / n))
}

coefficient_rows <- function(ds, fit) {
  co <- coef(summary(fit))
  ci <- confint.default(fit)
  for (term in rownames(co)) {
    name <- if (term == "(Intercept)") "Intercept" else term
    put_row(ds, name, estimate = exp(co[term, 1]), std_error = co[term, 2], statistic = co[term, 3],
            p_value = co[term, 4], conf_low = exp(ci[term, 1]), conf_high = exp(ci[term, 2]))
  }
}

lg <- read_data("logistic")
models <- list(
  logistic_unadjusted = error ~ after,
  logistic_adjusted = error ~ after + age + charlson + n_medicines
)
for (ds in names(models)) {
  fit <- glm(models[[ds]], data = lg, family = binomial, control = glm.control(epsilon = 1e-12))
  coefficient_rows(ds, fit)
  for (g in c(10, 5)) {
    hl <- hosmer_lemeshow(fit$y, fitted(fit), g)
    put_row(ds, sprintf("hosmer_lemeshow_g%d", g), statistic = hl["statistic"], p_value = hl["p_value"], df = hl["df"])
  }
  put_row(ds, "nagelkerke_r2", estimate = nagelkerke(fit))
}

ct <- read_data("counts")
fit <- glm(errors ~ after + age + offset(log(n_medicines)), data = ct, family = poisson, control = glm.control(epsilon = 1e-12))
coefficient_rows("poisson", fit)
put("poisson", "dispersion", "estimate", sum(residuals(fit, type = "pearson")^2) / fit$df.residual)

fit <- glm(errors ~ after + age, data = ct, family = poisson, control = glm.control(epsilon = 1e-12))
coefficient_rows("poisson_no_offset", fit)

fit <- glm.nb(errors ~ after + age + offset(log(n_medicines)), data = ct, control = glm.control(epsilon = 1e-12, maxit = 100))
coefficient_rows("negative_binomial", fit)
# glm.nb's SE.theta is the observed information at theta.ml's previous Newton iterate (it stops when
# the step is below 1.2e-4); the same formula at the final theta and means is the tight reference.
y <- fit$y; mu <- fitted(fit); th <- fit$theta
info <- sum(-trigamma(th + y) + trigamma(th) - 1 / th + 2 / (mu + th) - (y + th) / (mu + th)^2)
put_row("negative_binomial", "theta", estimate = th, std_error = 1 / sqrt(info))
put_row("negative_binomial", "theta_glm_nb", std_error = fit$SE.theta)

# A long exposure (28 to 90 days at risk): glm.nb converges as usual; the quasi-Newton fit we start with
# stalled there and reported a failure at the maximum
cd <- read_data("counts_days")
fit <- glm.nb(ade_count ~ after + age + offset(log(days_at_risk)), data = cd,
              control = glm.control(epsilon = 1e-12, maxit = 100))
coefficient_rows("negative_binomial_days", fit)
put_row("negative_binomial_days", "theta", estimate = fit$theta)

write_results("regression")
