# Clustered outcomes: lme4::glmer (Laplace, nAGQ = 1) and lme4::lmer (REML) for the cluster-specific
# (conditional) models, geepack::geeglm (exchangeable) for the population-averaged one.
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))), "common.R"))
suppressMessages({ library(lme4); library(geepack) })

fixed_rows <- function(ds, estimates, ses) {
  for (term in names(estimates)) {
    name <- if (term == "(Intercept)") "Intercept" else term
    put_row(ds, name, estimate = estimates[[term]], std_error = ses[[term]])
  }
}

glmer_rows <- function(ds, fit) {
  fixed_rows(ds, fixef(fit), sqrt(diag(as.matrix(vcov(fit)))) |> setNames(names(fixef(fit))))
  vc <- as.data.frame(VarCorr(fit))
  for (i in seq_len(nrow(vc))) put_row(ds, paste0("sd__(Intercept)|", vc$grp[i]), estimate = vc$sdcor[i])
  put_row(ds, "glmer", loglik = as.numeric(logLik(fit)), singular = as.numeric(isSingular(fit)))
}

m <- read_data("mixed")
for (ds in c("small", "unbalanced", "few_clusters", "medium", "null_variance")) {
  x <- m[m$dataset == ds, ]
  fit <- glmer(error ~ after + age10 + (1 | team), data = x, family = binomial, nAGQ = 1)
  glmer_rows(ds, fit)
  # geeglm needs each cluster's rows together
  x <- x[order(x$team), ]
  gee <- geeglm(error ~ after + age10, id = factor(x$team), data = x, family = binomial, corstr = "exchangeable")
  co <- coef(summary(gee))
  for (term in rownames(co)) {
    name <- if (term == "(Intercept)") "Intercept" else term
    put_row(paste0(ds, "_gee"), name, estimate = co[term, "Estimate"], std_error = co[term, "Std.err"])
  }
  put_row(paste0(ds, "_gee"), "correlation", estimate = gee$geese$alpha[[1]])
}

x <- m[m$dataset == "crossed", ]
glmer_rows("crossed", glmer(error ~ after + age10 + (1 | team) + (1 | ward), data = x, family = binomial, nAGQ = 1))

l <- read_data("lmm")
for (ds in unique(l$dataset)) {
  x <- l[l$dataset == ds, ]
  fit <- lmer(mai_change ~ after + age + (1 | team), data = x, REML = TRUE)
  fixed_rows(paste0("lmm_", ds), fixef(fit), sqrt(diag(as.matrix(vcov(fit)))) |> setNames(names(fixef(fit))))
  vc <- as.data.frame(VarCorr(fit))
  put_row(paste0("lmm_", ds), "sd__(Intercept)|team", estimate = vc$sdcor[vc$grp == "team"])
  put_row(paste0("lmm_", ds), "sd__Residual", estimate = vc$sdcor[vc$grp == "Residual"])
  put_row(paste0("lmm_", ds), "lmer", reml_criterion = REMLcrit(fit))
}
write_results("mixed")
