# Controlled before-after (difference in differences) for a binary outcome:
# - the four proportions, the difference in differences with its Wald interval, and its MOVER interval from the
#   four Wilson intervals (prop.test(correct = FALSE), the Wilson score interval), written out by hand;
# - glm(binomial) with the group x period interaction and sandwich::vcovCL(type = "HC1"), z tests;
# - lme4::glmer with a random intercept per site (Laplace), the same interaction;
# - the wild cluster bootstrap by hand: restricted (null-imposed) score bootstrap (Kline and Santos 2012) with
#   Webb's six-point weights, all 6^6 = 46,656 combinations enumerated on the 6-site `tiny` data, so the
#   bootstrap distribution is exact and needs no random numbers; interval by bisection, as analysis/stats/designs.py.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages({library(sandwich); library(lme4)})

wilson <- function(e, n) as.numeric(prop.test(e, n, correct = FALSE)$conf.int)
z <- qnorm(0.975)
counts <- read_data("did_counts")
for (i in seq_len(nrow(counts))) {
  r <- counts[i, ]
  e <- c(r$e_i0, r$e_i1, r$e_c0, r$e_c1); n <- c(r$n_i0, r$n_i1, r$n_c0, r$n_c1)
  p <- e / n
  lim <- t(sapply(seq_along(e), function(k) wilson(e[k], n[k])))
  for (k in 1:4) put_row(r$dataset, c("proportion_intervention_before", "proportion_intervention_after",
                                      "proportion_control_before", "proportion_control_after")[k],
                         estimate = p[k], conf_low = lim[k, 1], conf_high = lim[k, 2])
  delta <- (p[2] - p[1]) - (p[4] - p[3])
  se <- sqrt(sum(p * (1 - p) / n))
  put_row(r$dataset, "difference_in_differences", estimate = delta, std_error = se, statistic = delta / se,
          p_value = 2 * pnorm(-abs(delta / se)), conf_low = delta - z * se, conf_high = delta + z * se)
  sign <- c(-1, 1, 1, -1)
  low <- delta - sqrt(sum(ifelse(sign > 0, (p - lim[, 1])^2, (lim[, 2] - p)^2)))
  high <- delta + sqrt(sum(ifelse(sign > 0, (lim[, 2] - p)^2, (p - lim[, 1])^2)))
  put_row(r$dataset, "difference_in_differences_mover", estimate = delta, conf_low = low, conf_high = high)
}

did <- read_data("did")
for (ds in unique(did$dataset)) {
  x <- did[did$dataset == ds, ]
  for (f in c("plain", "adjusted")) {
    formula <- if (f == "plain") y ~ intervention * after else y ~ intervention * after + age
    fit <- glm(formula, family = binomial, data = x, control = glm.control(epsilon = 1e-12, maxit = 100))
    v <- vcovCL(fit, cluster = ~site, type = "HC1")
    b <- coef(fit); se <- sqrt(diag(v))
    for (term in names(b)) {
      put_row(sprintf("%s_%s_cluster", ds, f), term, estimate = b[[term]], std_error = se[[term]],
              statistic = b[[term]] / se[[term]], p_value = 2 * pnorm(-abs(b[[term]] / se[[term]])))
    }
    mixed <- glmer(update(formula, . ~ . + (1 | site)), family = binomial, data = x, nAGQ = 1,
                   control = glmerControl(tolPwrss = 1e-13))
    cf <- summary(mixed)$coefficients
    put_row(sprintf("%s_%s_mixed", ds, f), "intervention:after", estimate = cf["intervention:after", 1],
            std_error = cf["intervention:after", 2])
  }
}

# The wild cluster bootstrap, by hand, on `tiny`: y ~ intervention * after, coefficient intervention:after.
webb <- c(-sqrt(1.5), -1, -sqrt(0.5), sqrt(0.5), 1, sqrt(1.5))
x <- did[did$dataset == "tiny", ]
X <- model.matrix(~ intervention * after, data = x)
y <- x$y
site <- as.integer(factor(x$site, levels = unique(x$site)))
G <- max(site)
k <- which(colnames(X) == "intervention:after")
V <- as.matrix(expand.grid(rep(list(webb), G)))  # 46,656 rows: every combination of the six sites' weights
scores_at <- function(b0) {
  off <- b0 * X[, k]
  rest <- glm(y ~ X[, -k] - 1 + offset(off), family = binomial, control = glm.control(epsilon = 1e-14, maxit = 200))
  mu <- fitted(rest)
  H <- t(X) %*% (X * (mu * (1 - mu)))
  S <- rowsum(X * (y - mu), site)  # clusters x coefficients
  S[, k] - S[, -k] %*% solve(H[-k, -k], H[-k, k])
}
score_test <- function(s) {
  t0 <- sum(s) / sqrt(sum(s^2))
  boot <- as.numeric(V %*% s) / sqrt(as.numeric(V^2 %*% s^2))
  c(statistic = t0, p = mean(abs(boot) >= abs(t0) - 1e-12 * max(1, abs(t0))))
}
full <- glm(y ~ intervention * after, family = binomial, data = x, control = glm.control(epsilon = 1e-12))
estimate <- coef(full)[["intervention:after"]]
se <- sqrt(diag(vcovCL(full, cluster = ~site, type = "HC1")))[["intervention:after"]]
at_null <- score_test(scores_at(0))
ends <- c()
for (direction in c(-1, 1)) {
  inside <- estimate; step <- max(se, 1e-3); outside <- estimate + direction * step
  tries <- 0
  while (score_test(scores_at(outside))[["p"]] > 0.05 && tries < 30) {
    inside <- outside; step <- step * 2; outside <- estimate + direction * step; tries <- tries + 1
  }
  if (tries == 30) stop("unbounded interval")
  while (abs(outside - inside) > 1e-8) {
    middle <- (inside + outside) / 2
    if (score_test(scores_at(middle))[["p"]] > 0.05) inside <- middle else outside <- middle
  }
  ends <- c(ends, (inside + outside) / 2)
}
put_row("tiny_wild_bootstrap", "intervention:after", estimate = estimate, std_error = se,
        statistic = at_null[["statistic"]], p_value = at_null[["p"]], conf_low = ends[1], conf_high = ends[2],
        replicates = nrow(V))
# Event study and pre-period trend comparison (did_times: time points -4 ... 2, the change at 0):
# - glm(y ~ intervention * relevel(factor(time), ref = "-1") + age), the interactions with vcovCL(HC1) and vcov;
# - on the rows before the change: the joint Wald test of the intervention x time point interactions (by hand,
#   b' V^-1 b on 3 df) and the intervention x linear time coefficient, each with vcovCL(HC1) and with vcov.
times <- read_data("did_times")
for (ds in unique(times$dataset)) {
  x <- times[times$dataset == ds, ]
  x$point <- relevel(factor(x$time), ref = "-1")
  fit <- glm(y ~ intervention * point + age, family = binomial, data = x,
             control = glm.control(epsilon = 1e-14, maxit = 100))
  pre <- x[x$time < 0, ]
  pre$point <- relevel(factor(pre$time), ref = "-1")
  joint <- glm(y ~ intervention * point + age, family = binomial, data = pre,
               control = glm.control(epsilon = 1e-14, maxit = 100))
  linear <- glm(y ~ intervention * time + age, family = binomial, data = pre,
                control = glm.control(epsilon = 1e-14, maxit = 100))
  for (covariance in c("cluster", "model")) {
    vc <- function(f) if (covariance == "cluster") vcovCL(f, cluster = ~site, type = "HC1") else vcov(f)
    label <- sprintf("%s_%s", ds, covariance)
    v <- vc(fit); b <- coef(fit)
    for (term in grep("^intervention:point", names(b), value = TRUE)) {
      se <- sqrt(v[term, term])
      put_row(sprintf("%s_event", label), sprintf("event_%s", sub("intervention:point", "", term)),
              estimate = exp(b[[term]]), std_error = se, p_value = 2 * pnorm(-abs(b[[term]] / se)),
              conf_low = exp(b[[term]] - z * se), conf_high = exp(b[[term]] + z * se))
    }
    k <- grep("^intervention:point", names(coef(joint)), value = TRUE)
    d <- coef(joint)[k]; w <- as.numeric(t(d) %*% solve(vc(joint)[k, k], d))
    put_row(sprintf("%s_trends", label), "parallel_trends_wald", statistic = w, df = length(k),
            p_value = pchisq(w, length(k), lower.tail = FALSE))
    b <- coef(linear)[["intervention:time"]]; se <- sqrt(vc(linear)["intervention:time", "intervention:time"])
    put_row(sprintf("%s_trends", label), "pre_trend_ratio", estimate = exp(b), std_error = se,
            p_value = 2 * pnorm(-abs(b / se)), conf_low = exp(b - z * se), conf_high = exp(b + z * se))
  }
}
# Count and continuous outcomes (did_other): glm(poisson, offset log(days)) and lm with the interaction and
# vcovCL(HC1); glmer(poisson) and lmer(REML) with a site random intercept.
oth <- read_data("did_other")
fits <- list(
  count = glm(events ~ intervention * after + age + offset(log(days)), family = poisson, data = oth,
              control = glm.control(epsilon = 1e-14, maxit = 100)),
  continuous = lm(score ~ intervention * after + age, data = oth))
for (kind in names(fits)) {
  fit <- fits[[kind]]
  v <- vcovCL(fit, cluster = ~site, type = "HC1")
  b <- coef(fit); se <- sqrt(diag(v))
  for (term in names(b)) put_row(sprintf("other_%s_cluster", kind), term, estimate = b[[term]],
                                 std_error = se[[term]], p_value = 2 * pnorm(-abs(b[[term]] / se[[term]])))
}
mixed <- glmer(events ~ intervention * after + age + offset(log(days)) + (1 | site), family = poisson, data = oth,
               nAGQ = 1, control = glmerControl(tolPwrss = 1e-13))
cf <- summary(mixed)$coefficients
put_row("other_count_mixed", "intervention:after", estimate = cf["intervention:after", 1],
        std_error = cf["intervention:after", 2])
mixed <- lmer(score ~ intervention * after + age + (1 | site), data = oth, REML = TRUE)
cf <- summary(mixed)$coefficients
put_row("other_continuous_mixed", "intervention:after", estimate = cf["intervention:after", 1],
        std_error = cf["intervention:after", 2])
# Event study and pre-period trend comparison of a count and a continuous outcome (did_times_other):
# glm(poisson, offset log(days)) and lm with intervention x factor(time) (reference -1), vcovCL(HC1) and vcov;
# the joint Wald test and the intervention x linear time coefficient on the rows before the change.
tother <- read_data("did_times_other")
tother$point <- relevel(factor(tother$time), ref = "-1")
pre <- tother[tother$time < 0, ]
pre$point <- relevel(factor(pre$time), ref = "-1")
fit_of <- function(kind, rhs, data) {
  if (kind == "count") {
    glm(as.formula(paste("events ~", rhs, "+ offset(log(days))")), family = poisson, data = data,
        control = glm.control(epsilon = 1e-14, maxit = 100))
  } else {
    lm(as.formula(paste("score ~", rhs)), data = data)
  }
}
for (kind in c("count", "continuous")) {
  shown <- if (kind == "count") exp else identity
  fit <- fit_of(kind, "intervention * point + age", tother)
  joint <- fit_of(kind, "intervention * point + age", pre)
  linear <- fit_of(kind, "intervention * time + age", pre)
  for (covariance in c("cluster", "model")) {
    vc <- function(f) if (covariance == "cluster") vcovCL(f, cluster = ~site, type = "HC1") else vcov(f)
    label <- sprintf("times_%s_%s", kind, covariance)
    v <- vc(fit); b <- coef(fit)
    for (term in grep("^intervention:point", names(b), value = TRUE)) {
      se <- sqrt(v[term, term])
      put_row(sprintf("%s_event", label), sprintf("event_%s", sub("intervention:point", "", term)),
              estimate = shown(b[[term]]), std_error = se, p_value = 2 * pnorm(-abs(b[[term]] / se)),
              conf_low = shown(b[[term]] - z * se), conf_high = shown(b[[term]] + z * se))
    }
    k <- grep("^intervention:point", names(coef(joint)), value = TRUE)
    d <- coef(joint)[k]; w <- as.numeric(t(d) %*% solve(vc(joint)[k, k], d))
    put_row(sprintf("%s_trends", label), "parallel_trends_wald", statistic = w, df = length(k),
            p_value = pchisq(w, length(k), lower.tail = FALSE))
    b <- coef(linear)[["intervention:time"]]; se <- sqrt(vc(linear)["intervention:time", "intervention:time"])
    put_row(sprintf("%s_trends", label), if (kind == "count") "pre_trend_ratio" else "pre_trend_difference",
            estimate = shown(b), std_error = se, p_value = 2 * pnorm(-abs(b / se)), conf_low = shown(b - z * se),
            conf_high = shown(b + z * se))
  }
}
write_results("designs")
