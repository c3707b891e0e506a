"""Statistics: pure functions, data frames (or counts) in, tidy data frames out.

Every function returns the columns of :data:`analysis.stats.tidy.COLUMNS` (term, estimate, std_error,
statistic, df, p_value, conf_low, conf_high, method, n, warnings), one row per reported quantity, and
keeps model warnings as sentences in ``warnings``. Nothing here reads files or knows about studies.
"""

from analysis.stats.means import mean_difference
from analysis.stats.mixed import gee_logistic, linear_mixed, mixed_logistic, mixed_poisson
from analysis.stats.power import (
    cluster_power,
    design_effect,
    icc_from_cluster_sd,
    power_two_proportions,
    sample_size_two_proportions,
    stepped_wedge_power,
)
from analysis.stats.proportions import (
    chi2_test,
    compare_proportions,
    fisher_test,
    number_needed_to_treat,
    odds_ratio_exact,
    odds_ratio_woolf,
    proportion,
    relative_risk,
    risk_difference,
    wilson_interval,
)
from analysis.stats.ranks import hodges_lehmann, mann_whitney, median_iqr, proportional_odds, quantile, trend_test
from analysis.stats.regression import (
    hosmer_lemeshow,
    hosmer_lemeshow_p,
    logistic_regression,
    nagelkerke_r2,
    nagelkerke_r2_value,
    negative_binomial_regression,
    poisson_regression,
)
from analysis.stats.tidy import COLUMNS
from analysis.stats.timeseries import p_chart, segmented_regression

__all__ = [
    "COLUMNS",
    "chi2_test",
    "cluster_power",
    "compare_proportions",
    "design_effect",
    "fisher_test",
    "gee_logistic",
    "hodges_lehmann",
    "hosmer_lemeshow",
    "hosmer_lemeshow_p",
    "icc_from_cluster_sd",
    "linear_mixed",
    "logistic_regression",
    "mann_whitney",
    "mean_difference",
    "median_iqr",
    "mixed_logistic",
    "mixed_poisson",
    "nagelkerke_r2",
    "nagelkerke_r2_value",
    "negative_binomial_regression",
    "number_needed_to_treat",
    "odds_ratio_exact",
    "odds_ratio_woolf",
    "p_chart",
    "poisson_regression",
    "power_two_proportions",
    "proportion",
    "proportional_odds",
    "quantile",
    "relative_risk",
    "risk_difference",
    "sample_size_two_proportions",
    "segmented_regression",
    "stepped_wedge_power",
    "trend_test",
    "wilson_interval",
]
