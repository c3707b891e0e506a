# Clustered outcomes: lme4::glmer (Laplace, nAGQ = 1; binomial, and poisson with an offset) and lme4::lmer
# (REML) for the cluster-specific (conditional) models, geepack::geeglm (exchangeable) for the
# population-averaged one; glm and lm on a single cluster, the models fitted when no random intercept
# can be estimated.
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

# Each binary model is fitted twice: as glmer's defaults give it, and with its PIRLS tolerance tolPwrss
# (1e-7 on the relative change of the penalised deviance) tightened to 1e-13 ("<dataset>_exact"). With
# the default, PIRLS stops before the mode, so the criterion glmer optimises (the log-likelihood and
# log determinant at that point) is the Laplace deviance only to about 1e-4 on the log-likelihood; with
# 1e-13 it is the Laplace deviance to rounding, the criterion analysis.stats.laplace minimises.
glmer_both <- function(ds, formula, data) {
  glmer_rows(ds, glmer(formula, data = data, family = binomial, nAGQ = 1))
  exact <- glmerControl(tolPwrss = 1e-13)
  glmer_rows(paste0(ds, "_exact"), glmer(formula, data = data, family = binomial, nAGQ = 1, control = exact))
}

m <- read_data("mixed")
for (ds in c("small", "unbalanced", "few_clusters", "medium", "null_variance")) {
  x <- m[m$dataset == ds, ]
  glmer_both(ds, error ~ after + age10 + (1 | team), x)
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
glmer_both("crossed", error ~ after + age10 + (1 | team) + (1 | ward), x)

# The study's own models on the synthetic reference study (data/study_*.csv)
p <- read_data("study_patients")
admission <- "error_at_admission ~ after + age + charlson + n_medicines"
discharge <- "error_at_discharge ~ after + age + charlson + n_medicines + length_of_stay"
random <- c(team = "(1 | team)", ward = "(1 | ward)", pharmacist = "(1 | pharmacist)",
            team_ward = "(1 | team) + (1 | ward)")
for (name in names(random)) {
  glmer_both(paste0("study_admission_", name), as.formula(paste(admission, "+", random[[name]])), p)
  # glmer leaves out the 24 patients without a discharge outcome (na.omit)
  glmer_both(paste0("study_discharge_", name), as.formula(paste(discharge, "+", random[[name]])), p)
}
# missing discharge outcomes counted as errors, and as no errors (all 233 patients)
fills <- c(error = 1, no_error = 0)
for (what in names(fills)) {
  x <- p
  x$error_at_discharge[is.na(x$error_at_discharge)] <- fills[[what]]
  glmer_both(paste0("study_discharge_missing_as_", what, "_team"), as.formula(paste(discharge, "+ (1 | team)")), x)
}
s <- read_data("study_suggestions")
glmer_both("study_acceptance_team", accepted ~ after + (1 | team), s)

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

# MAI change in the study's patients aged 65 and over (the team SD is estimated at zero: singular)
x <- p[p$age_65_plus == 1 & !is.na(p$mai_change_discharge), ]
mai <- list(study_mai_team = mai_change_discharge ~ after + (1 | team),
            study_mai_pre_team = mai_change_discharge ~ after + mai_pre_admission + (1 | team))
for (ds in names(mai)) {
  fit <- lmer(mai[[ds]], data = x, REML = TRUE)
  fixed_rows(ds, fixef(fit), sqrt(diag(as.matrix(vcov(fit)))) |> setNames(names(fixef(fit))))
  vc <- as.data.frame(VarCorr(fit))
  put_row(ds, "sd__(Intercept)|team", estimate = vc$sdcor[vc$grp == "team"])
  put_row(ds, "sd__Residual", estimate = vc$sdcor[vc$grp == "Residual"])
  put_row(ds, "lmer", reml_criterion = REMLcrit(fit), singular = as.numeric(isSingular(fit)), n = nobs(fit))
}

# Counts with an exposure: glmer(family = poisson, offset = log(days)), with glmer's defaults and with
# PIRLS run to the mode (tolPwrss = 1e-13, "_exact"), as the binary models above
mp <- read_data("mixed_poisson")
poisson_glmer <- function(control) {
  glmer(errors ~ after + age10 + (1 | team), data = mp, family = poisson, offset = log(days), nAGQ = 1,
        control = control)
}
glmer_rows("poisson", poisson_glmer(glmerControl()))
glmer_rows("poisson_exact", poisson_glmer(glmerControl(tolPwrss = 1e-13)))

# A single cluster (the first team of each dataset): no between-cluster variance to estimate, so the
# model fitted is the one without the random intercept: glm, and lm with t tests on the residual df
glm_rows <- function(ds, fit) {
  co <- coef(summary(fit))
  fixed_rows(ds, co[, 1], co[, 2])
}
one <- m[m$dataset == "small" & m$team == "T01", ]
glm_rows("single_team_binomial", glm(error ~ after + age10, data = one, family = binomial,
                                     control = glm.control(epsilon = 1e-12)))
one <- mp[mp$team == "T01", ]
glm_rows("single_team_poisson", glm(errors ~ after + age10, data = one, family = poisson, offset = log(days),
                                    control = glm.control(epsilon = 1e-12)))
one <- l[l$dataset == "small" & l$team == "T01", ]
fit <- lm(mai_change ~ after + age, data = one)
glm_rows("single_team_lm", fit)
put_row("single_team_lm", "lm", df = fit$df.residual)
put_row("single_team_lm", "sd__Residual", estimate = sigma(fit))

# ---- Appended (the rows above are unchanged): the fitter at scale, events out of trials, the Wald SE of
# each SD and the conditional modes of the random intercepts ----

# 100,000 patients in 200 teams (data/mixed_large.csv.gz, read as it is), the study's covariates
big <- read.csv(file.path(data_dir, "mixed_large.csv.gz"), stringsAsFactors = FALSE)
glmer_both("large", error ~ after + age + charlson + n_medicines + (1 | team), big)

# Events out of trials (aggregated rows): glmer's logLik includes the log binomial coefficients
tr <- read_data("mixed_trials")
glmer_both("trials", cbind(events, trials - events) ~ after + age_group + (1 | team), tr)

# For glmer (PIRLS to the mode, "_exact"): the SE of each random-intercept SD from the Hessian glmer keeps
# over (theta, beta) (vcov's own matrix: 2 H^-1; for these families theta is the SD), and the conditional
# modes with their conditional SDs, ranef(condVar = TRUE)
extra_rows <- function(ds, fit) {
  v <- 2 * solve(fit@optinfo$derivs$Hessian)
  theta <- getME(fit, "theta")
  for (i in seq_along(theta)) {
    grp <- sub("\\.\\(Intercept\\)$", "", names(theta)[i])
    put_row(ds, paste0("sd__(Intercept)|", grp), std_error = sqrt(v[i, i]))
  }
  re <- ranef(fit, condVar = TRUE)
  for (grp in names(re)) {
    sds <- sqrt(attr(re[[grp]], "postVar")[1, 1, ])
    for (j in seq_len(nrow(re[[grp]]))) {
      put_row(ds, paste0("ranef|", grp, "|", rownames(re[[grp]])[j]), estimate = re[[grp]][j, 1], cond_sd = sds[j])
    }
  }
}
exact <- glmerControl(tolPwrss = 1e-13)
extra_rows("medium_exact", glmer(error ~ after + age10 + (1 | team), data = m[m$dataset == "medium", ],
                                 family = binomial, control = exact))
extra_rows("crossed_exact", glmer(error ~ after + age10 + (1 | team) + (1 | ward), data = m[m$dataset == "crossed", ],
                                  family = binomial, control = exact))
extra_rows("poisson_exact", poisson_glmer(exact))
extra_rows("large_exact", glmer(error ~ after + age + charlson + n_medicines + (1 | team), data = big,
                                family = binomial, control = exact))
extra_rows("trials_exact", glmer(cbind(events, trials - events) ~ after + age_group + (1 | team), data = tr,
                                 family = binomial, control = exact))

# ---- Appended (the rows above are unchanged): nested random intercepts written team/pharmacist, and
# adaptive Gauss-Hermite quadrature ----

# (1 | team/pharmacist) = (1 | team) + (1 | pharmacist:team): the pharmacist labels repeat across teams
# (data/mixed_nested.csv), and lme4 names the inner factor "pharmacist:team"
nested <- read_data("mixed_nested")
fit <- glmer(error ~ after + age10 + (1 | team/pharmacist), data = nested, family = binomial, control = exact)
glmer_rows("nested_exact", fit)
extra_rows("nested_exact", fit)

# nAGQ = 10 (adaptive Gauss-Hermite quadrature, one random intercept) on 60 small clusters
# (data/mixed_agq.csv), beside the Laplace fit (nAGQ = 1) of the same model
agq <- read_data("mixed_agq")
fit <- glmer(error ~ after + (1 | cluster), data = agq, family = binomial, nAGQ = 10, control = exact)
glmer_rows("agq10_exact", fit)
extra_rows("agq10_exact", fit)
glmer_rows("agq1_exact", glmer(error ~ after + (1 | cluster), data = agq, family = binomial, nAGQ = 1,
                               control = exact))

# the same for counts: poisson with an offset, nAGQ = 10 and 1, on 60 small clusters with few events
# (data/mixed_agq_poisson.csv)
agqp <- read_data("mixed_agq_poisson")
fit <- glmer(errors ~ after + (1 | cluster), data = agqp, family = poisson, offset = log(days), nAGQ = 10,
             control = exact)
glmer_rows("agq10_poisson_exact", fit)
extra_rows("agq10_poisson_exact", fit)
glmer_rows("agq1_poisson_exact", glmer(errors ~ after + (1 | cluster), data = agqp, family = poisson,
                                       offset = log(days), nAGQ = 1, control = exact))
write_results("mixed")
