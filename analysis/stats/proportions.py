"""Two proportions, before vs after: intervals, tests and effect measures from four counts.

Every function takes ``events_before, n_before, events_after, n_after`` and compares after with before:
the risk difference is ``p_after - p_before``, the ratios are after over before, and the number needed
to treat is positive when the after period has fewer events (a benefit). Each returns a tidy frame
(see :mod:`analysis.stats.tidy`); :func:`compare_proportions` returns all of them.

A period without patients (n = 0) leaves every comparison missing, and no events in either period (or
nothing but events) leaves the ratios and the chi-square statistic missing; ``warnings`` says which
and why. What stays computable is still given: the other period's proportion, the risk difference
of 0 with its Newcombe interval, Fisher's p of 1.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats.contingency import odds_ratio as _scipy_odds_ratio

from analysis.stats.tidy import Notes, frame, row, wald_test, z_quantile

__all__ = [
    "chi2_test",
    "compare_proportions",
    "fisher_test",
    "number_needed_to_treat",
    "odds_ratio_exact",
    "odds_ratio_woolf",
    "proportion",
    "relative_risk",
    "risk_difference",
    "wilson_interval",
]

HALDANE = 0.5


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _check(events: int, n: int, which: str) -> tuple[int, int]:
    if int(events) != events or int(n) != n:
        raise ValueError(f"{which}: counts must be whole numbers, got {events!r} of {n!r}")
    events, n = int(events), int(n)
    if not 0 <= events <= n:
        raise ValueError(f"{which}: need 0 <= events <= n, got {events} of {n}")
    return events, n


def _counts(events_before, n_before, events_after, n_after) -> tuple[int, int, int, int]:
    eb, nb = _check(events_before, n_before, "before")
    ea, na = _check(events_after, n_after, "after")
    return eb, nb, ea, na


def _no_patients(nb: int, na: int) -> str:
    """The sentence for a period without patients, or ""."""
    if nb == 0 and na == 0:
        return "Not estimated: no patients in either period (n = 0), so there is nothing to compare"
    for label, n in (("before", nb), ("after", na)):
        if n == 0:
            return f"Not estimated: no patients in the {label} period (n = 0), so there is nothing to compare"
    return ""


def _no_contrast(eb: int, nb: int, ea: int, na: int) -> str:
    """Why the outcome does not vary across the 2x2 table (no events, or nothing but events), or ""."""
    if eb + ea == 0:
        return "no patient had the outcome in either period"
    if eb + ea == nb + na:
        return "every patient had the outcome in both periods"
    return ""


def _table(eb: int, nb: int, ea: int, na: int) -> np.ndarray:
    """The 2x2 table with the after period first, so that ratios read after over before."""
    return np.array([[ea, na - ea], [eb, nb - eb]])


def _sparse_sentence(table: np.ndarray) -> str:
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    expected = np.outer(rows, cols) / table.sum()
    small = expected < 5
    if not small.any():
        return ""
    return (
        f"{int(small.sum())} of 4 expected counts are below 5 (smallest {expected.min():.2f}), so the "
        "chi-square approximation may be poor; Fisher's exact test is reported beside it"
    )


def wilson_interval(events: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    .. math:: \\frac{p + z^2/2n \\pm z\\sqrt{p(1-p)/n + z^2/4n^2}}{1 + z^2/n}

    References: Wilson EB. J Am Stat Assoc 1927;22:209-12. Newcombe RG. Stat Med 1998;17:857-72.

    With no patients (n = 0) both limits are NaN.

    >>> [round(v, 4) for v in wilson_interval(6, 121)]
    [0.0229, 0.104]
    """
    events, n = _check(events, n, "proportion")
    z = z_quantile(confidence)
    if n == 0:
        return math.nan, math.nan
    p = events / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at p = 0 or 1 the limit equals the estimate exactly; rounding must not put it on the wrong side
    low = 0.0 if events == 0 else centre - half
    high = 1.0 if events == n else centre + half
    return low, high


def proportion(events: int, n: int, *, term: str = "proportion", confidence: float = 0.95) -> pd.DataFrame:
    """A proportion with its Wilson score interval (one row).

    ``std_error`` is the binomial standard error :math:`\\sqrt{p(1-p)/n}`.

    >>> proportion(49, 121)[["estimate", "conf_low", "conf_high"]].round(4).values.tolist()
    [[0.405, 0.3217, 0.494]]
    """
    events, n = _check(events, n, term)
    method = f"Proportion with Wilson score {_pct(confidence)} CI"
    if n == 0:
        sentence = "Not estimated: no patients (n = 0), so there is no proportion."
        return frame([row(term, method=method, n=0, warnings=sentence)])
    p = events / n
    low, high = wilson_interval(events, n, confidence)
    return frame([row(term, p, math.sqrt(p * (1 - p) / n), conf_low=low, conf_high=high, method=method, n=n)])


def chi2_test(events_before, n_before, events_after, n_after, *, correction: bool = False) -> pd.DataFrame:
    """Pearson's chi-square test of the 2x2 table, with or without Yates' continuity correction.

    .. math:: X^2 = \\sum (|O - E| - c)^2 / E, \\quad c = \\min(0.5, |O - E|) \\text{ if corrected, else } 0

    on 1 df (``df``), as R's ``chisq.test(correct=)``. Expected counts below 5 are flagged in ``warnings``.

    References: Pearson K. Philos Mag 1900;50:157-75. Yates F. Suppl J R Stat Soc 1934;1:217-35.

    >>> round(float(chi2_test(49, 121, 10, 112)["statistic"].iloc[0]), 3)
    30.65
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    table = _table(eb, nb, ea, na)
    notes = Notes()
    term = "chi2_corrected" if correction else "chi2"
    name = "Pearson chi-square test" + (" with Yates' continuity correction" if correction else "")
    # the 2x2 table's df is 1 whatever the counts, as chisq.test reports it beside an undefined statistic
    notes.add(_no_patients(nb, na))
    if not notes and _no_contrast(eb, nb, ea, na):
        notes.add(f"Not estimated: {_no_contrast(eb, nb, ea, na)}, so the chi-square statistic is undefined")
    if notes:
        return frame([row(term, df=1.0, method=f"{name}, 1 df", n=nb + na, warnings=str(notes))])
    notes.add(_sparse_sentence(table))
    statistic, p, dof, _ = stats.chi2_contingency(table, correction=correction)
    return frame(
        [
            row(
                term,
                statistic=float(statistic),
                df=float(dof),
                p_value=float(p),
                method=f"{name}, {dof} df",
                n=nb + na,
                warnings=str(notes),
            )
        ]
    )


def fisher_test(events_before, n_before, events_after, n_after) -> pd.DataFrame:
    """Fisher's exact test, two-sided (sum of the probabilities of tables no more likely than the observed).

    No events in either period (or nothing but events) leaves a single possible table: p = 1.

    Reference: Fisher RA. J R Stat Soc 1922;85:87-94. Agrees with R's ``fisher.test``.

    >>> round(float(fisher_test(6, 121, 0, 112)["p_value"].iloc[0]), 4)
    0.0299
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    method = "Fisher's exact test, two-sided"
    empty = _no_patients(nb, na)
    if empty:
        return frame([row("fisher", method=method, n=nb + na, warnings=empty + ".")])
    p = stats.fisher_exact(_table(eb, nb, ea, na), alternative="two-sided").pvalue
    return frame([row("fisher", p_value=float(p), method=method, n=nb + na)])


def _haldane(table: np.ndarray) -> tuple[np.ndarray, str]:
    if (table == 0).any():
        return table + HALDANE, (
            "A cell of the 2x2 table is zero, so 0.5 was added to every cell (Haldane-Anscombe correction) "
            "before computing the odds ratio and its interval"
        )
    return table.astype(float), ""


def _ratio_undefined(eb: int, nb: int, ea: int, na: int, what: str, *, all_events_too: bool) -> str:
    """The ``warnings`` cell of a ratio that cannot be estimated, or "": a period without patients, or no
    events in either period (and, if ``all_events_too``, nothing but events), where the ratio is 0/0 and
    no continuity correction makes it informative."""
    empty = _no_patients(nb, na)
    if empty:
        return empty + "."
    if eb + ea == 0 or (all_events_too and eb + ea == nb + na):
        return f"Not estimated: {_no_contrast(eb, nb, ea, na)}, so the {what} is 0/0, undefined."
    return ""


def odds_ratio_woolf(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Odds ratio (after vs before) with Woolf's logit interval and the Wald z test.

    .. math:: \\log OR \\pm z \\sqrt{1/a + 1/b + 1/c + 1/d}

    A zero cell adds 0.5 to every cell (Haldane-Anscombe), stated in ``method`` and ``warnings``; with no
    events in either period (or nothing but events) the odds ratio is 0/0 and is missing, not corrected.
    ``std_error`` is that of log OR.

    References: Woolf B. Ann Hum Genet 1955;19:251-3. Haldane JBS. Ann Hum Genet 1956;20:309-11.

    >>> odds_ratio_woolf(49, 121, 10, 112)[["estimate", "conf_low", "conf_high"]].round(3).values.tolist()
    [[0.144, 0.068, 0.303]]
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    method = f"Odds ratio (after vs before), Woolf (log) {_pct(confidence)} CI, Wald z test"
    unfitted = _ratio_undefined(eb, nb, ea, na, "odds ratio", all_events_too=True)
    if unfitted:
        return frame([row("odds_ratio_woolf", method=method, n=nb + na, warnings=unfitted)])
    table, sentence = _haldane(_table(eb, nb, ea, na))
    (a, b), (c, d) = table
    log_or = math.log(a * d / (b * c))
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = z_quantile(confidence)
    if sentence:
        method += ", Haldane-Anscombe correction (+0.5 to every cell)"
    return frame(
        [
            row(
                "odds_ratio_woolf",
                math.exp(log_or),
                se,
                *wald_test(log_or, se),
                math.exp(log_or - z * se),
                math.exp(log_or + z * se),
                method=method,
                n=nb + na,
                warnings=sentence,
            )
        ]
    )


def odds_ratio_exact(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Conditional maximum-likelihood odds ratio with its exact interval and Fisher's p, as R's ``fisher.test``.

    The estimate maximises the non-central hypergeometric likelihood given the margins; the interval
    inverts the two one-sided exact tests. A zero cell gives an estimate of 0 (finite interval) or of
    infinity; an infinite estimate or limit is reported as missing with a sentence, never as inf.

    Reference: Cornfield J. Proc Third Berkeley Symp 1956;4:135-48 (scipy.stats.contingency.odds_ratio).

    >>> round(float(odds_ratio_exact(49, 121, 10, 112)["estimate"].iloc[0]), 3)
    0.145
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    table = _table(eb, nb, ea, na)
    method = (
        f"Odds ratio (after vs before), conditional maximum likelihood, exact {_pct(confidence)} CI, Fisher's exact p"
    )
    unfitted = _ratio_undefined(eb, nb, ea, na, "conditional odds ratio", all_events_too=True)
    if unfitted:
        # Fisher's p stays: with the outcome fixed the table is the only one possible, and p = 1
        p = math.nan if _no_patients(nb, na) else float(stats.fisher_exact(table).pvalue)
        return frame([row("odds_ratio_exact", p_value=p, method=method, n=nb + na, warnings=unfitted)])
    p = float(stats.fisher_exact(table).pvalue)
    notes = Notes()
    result = _scipy_odds_ratio(table, kind="conditional")
    ci = result.confidence_interval(confidence_level=confidence)
    values = [float(result.statistic), float(ci.low), float(ci.high)]
    if any(math.isinf(v) for v in values):
        notes.add(
            "A zero cell makes the conditional odds ratio (or its upper limit) infinite; it is reported "
            "as missing, and the Woolf row gives the Haldane-Anscombe corrected value"
        )
    estimate, low, high = (math.nan if math.isinf(v) else v for v in values)
    return frame(
        [
            row(
                "odds_ratio_exact",
                estimate,
                p_value=p,
                conf_low=low,
                conf_high=high,
                method=method,
                n=nb + na,
                warnings=str(notes),
            )
        ]
    )


def relative_risk(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Relative risk (after over before) with the log (Katz) interval and the Wald z test.

    .. math:: \\log RR \\pm z \\sqrt{1/a - 1/n_a + 1/c - 1/n_b}

    A zero number of events in either period adds 0.5 to every cell (so each n grows by 1),
    stated in ``method`` and ``warnings``; with no events in either period the relative risk is 0/0 and
    is missing. When every patient had the outcome in both periods it is exactly 1 with a standard error
    of 0, so there is no interval or test. ``std_error`` is that of log RR.

    Reference: Katz D, Baptista J, Azen SP, Pike MC. Biometrics 1978;34:469-74.

    >>> round(float(relative_risk(49, 121, 10, 112)["estimate"].iloc[0]), 4)
    0.2205
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    a, b, c, d = float(ea), float(na - ea), float(eb), float(nb - eb)
    method = f"Relative risk (after over before), log {_pct(confidence)} CI, Wald z test"
    unfitted = _ratio_undefined(eb, nb, ea, na, "relative risk", all_events_too=False)
    if unfitted:
        return frame([row("relative_risk", method=method, n=nb + na, warnings=unfitted)])
    sentence = ""
    if a == 0 or c == 0:
        a, b, c, d = a + HALDANE, b + HALDANE, c + HALDANE, d + HALDANE
        method += ", Haldane-Anscombe correction (+0.5 to every cell)"
        sentence = (
            "No events in one period, so 0.5 was added to every cell (Haldane-Anscombe correction) "
            "before computing the relative risk and its interval"
        )
    log_rr = math.log((a / (a + b)) / (c / (c + d)))
    se = math.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    z = z_quantile(confidence)
    low, high = math.exp(log_rr - z * se), math.exp(log_rr + z * se)
    if se == 0:
        low = high = math.nan
        sentence = (
            "Not estimated: the interval and test of the relative risk, because every patient had the outcome "
            "in both periods, so the relative risk is exactly 1 with no sampling variation on the log scale."
        )
    return frame(
        [
            row(
                "relative_risk",
                math.exp(log_rr),
                se,
                *wald_test(log_rr, se),
                low,
                high,
                method=method,
                n=nb + na,
                warnings=sentence,
            )
        ]
    )


def _newcombe(eb: int, nb: int, ea: int, na: int, confidence: float) -> tuple[float, float, float]:
    pa, pb = ea / na, eb / nb
    la, ua = wilson_interval(ea, na, confidence)
    lb, ub = wilson_interval(eb, nb, confidence)
    rd = pa - pb
    return rd, rd - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2), rd + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)


def risk_difference(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Risk difference (after minus before) with Newcombe's hybrid score interval (his method 10).

    With Wilson limits :math:`(l_a, u_a)` and :math:`(l_b, u_b)` of each proportion and
    :math:`\\delta = p_a - p_b`:

    .. math:: \\left(\\delta - \\sqrt{(p_a - l_a)^2 + (u_b - p_b)^2},\\;
              \\delta + \\sqrt{(u_a - p_a)^2 + (p_b - l_b)^2}\\right)

    ``std_error`` is the unpooled Wald standard error; the tests are in the chi-square and Fisher rows.
    With no events in either period (or nothing but events) the difference is 0 and the interval still
    reflects the two sample sizes; a period without patients leaves it missing.

    Reference: Newcombe RG. Stat Med 1998;17:873-90 (method 10).

    >>> risk_difference(6, 121, 0, 112)[["estimate", "conf_low", "conf_high"]].round(4).values.tolist()
    [[-0.0496, -0.104, -0.007]]
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    method = (
        f"Risk difference (after minus before), Newcombe hybrid score {_pct(confidence)} CI "
        "(method 10); std_error is the unpooled Wald SE"
    )
    empty = _no_patients(nb, na)
    if empty:
        return frame([row("risk_difference", method=method, n=nb + na, warnings=empty + ".")])
    rd, low, high = _newcombe(eb, nb, ea, na, confidence)
    pa, pb = ea / na, eb / nb
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return frame([row("risk_difference", rd, se, conf_low=low, conf_high=high, method=method, n=nb + na)])


def number_needed_to_treat(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Number needed to treat, :math:`1/(p_b - p_a)`, with its interval from the Newcombe risk difference.

    Positive values are NNTB (the after period prevents one event per NNT patients), negative values
    NNTH (one extra event per |NNT| patients). The limits are the reciprocals of the risk-difference
    limits. When that interval includes zero the NNT interval is not the values between its limits but
    runs through infinity, written as Altman recommends: "NNTB x to infinity to NNTH y". Then
    ``conf_low`` holds the NNTB limit x (positive) and ``conf_high`` the NNTH limit as -y (negative), in
    Altman's reading order, and ``warnings`` says so; no infinity is ever stored. The extra ``interval``
    column always gives the interval in words.

    References: Altman DG. BMJ 1998;317:1309-12. Newcombe RG. Stat Med 1998;17:873-90.

    >>> number_needed_to_treat(6, 121, 0, 112)["interval"].iloc[0]
    'NNTB 9.6 to 142.2'
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    method = (
        f"Number needed to treat, 1/(risk before - risk after), {_pct(confidence)} CI from the reciprocal "
        "Newcombe hybrid score limits of the risk difference (Altman 1998); positive = NNTB, negative = NNTH"
    )
    empty = _no_patients(nb, na)
    if empty:
        return frame([row("nnt", method=method, n=nb + na, warnings=empty + ".", interval="")])
    rd, rd_low, rd_high = _newcombe(eb, nb, ea, na, confidence)
    # benefit = reduction in risk: the risk-difference interval reflected
    benefit, b_low, b_high = -rd, -rd_high, -rd_low
    notes = Notes()
    estimate = 1 / benefit if benefit != 0 else math.nan
    if benefit == 0:
        notes.add("The two risks are equal, so the number needed to treat is infinite; it is reported as missing")
    if b_low > 0 or b_high < 0:
        low, high = sorted((1 / b_low, 1 / b_high))
        interval = f"NNTB {low:.1f} to {high:.1f}" if low > 0 else f"NNTH {-high:.1f} to {-low:.1f}"
    elif b_low < 0 < b_high:
        low, high = 1 / b_high, 1 / b_low
        interval = f"NNTB {low:.1f} to infinity to NNTH {-high:.1f}"
        notes.add(
            f"The {_pct(confidence)} interval of the risk difference includes zero, so the NNT interval runs "
            f"from NNTB {low:.1f} through infinity to NNTH {-high:.1f} (Altman 1998); conf_low holds the NNTB "
            "limit and conf_high the NNTH limit as a negative number, and values between them are outside "
            "the interval"
        )
    else:
        # a risk-difference limit of exactly zero leaves one side of the NNT interval unbounded
        low = 1 / b_high if b_high > 0 else math.nan
        high = 1 / b_low if b_low < 0 else math.nan
        interval = f"NNTB {low:.1f} to infinity" if b_high > 0 else f"NNTH {-high:.1f} to infinity"
        notes.add(
            "A limit of the risk difference is exactly zero, so one NNT limit is infinite; it is reported as "
            "missing, conf_low holding an NNTB limit and conf_high an NNTH limit (negative)"
        )
    return frame(
        [
            row(
                "nnt",
                estimate,
                conf_low=low,
                conf_high=high,
                method=method,
                n=nb + na,
                warnings=str(notes),
                interval=interval,
            )
        ]
    )


def compare_proportions(events_before, n_before, events_after, n_after, *, confidence: float = 0.95) -> pd.DataFrame:
    """Every comparison of two proportions, one row each (after vs before).

    Rows: ``events_before``, ``events_after`` (counts, ``n`` the denominator), ``proportion_before``,
    ``proportion_after`` (Wilson), ``risk_difference`` (Newcombe), ``relative_risk`` (log CI),
    ``odds_ratio_woolf``, ``odds_ratio_exact`` (conditional MLE, exact CI), ``chi2``,
    ``chi2_corrected`` (Yates), ``fisher`` and ``nnt`` (with an ``interval`` column in words).

    >>> compare_proportions(49, 121, 10, 112)["term"].tolist()[:4]
    ['events_before', 'events_after', 'proportion_before', 'proportion_after']
    """
    eb, nb, ea, na = _counts(events_before, n_before, events_after, n_after)
    counts = frame(
        [
            row("events_before", float(eb), method="Count of events", n=nb),
            row("events_after", float(ea), method="Count of events", n=na),
        ]
    )
    parts = [
        counts,
        proportion(eb, nb, term="proportion_before", confidence=confidence),
        proportion(ea, na, term="proportion_after", confidence=confidence),
        risk_difference(eb, nb, ea, na, confidence=confidence),
        relative_risk(eb, nb, ea, na, confidence=confidence),
        odds_ratio_woolf(eb, nb, ea, na, confidence=confidence),
        odds_ratio_exact(eb, nb, ea, na, confidence=confidence),
        chi2_test(eb, nb, ea, na, correction=False),
        chi2_test(eb, nb, ea, na, correction=True),
        fisher_test(eb, nb, ea, na),
        number_needed_to_treat(eb, nb, ea, na, confidence=confidence),
    ]
    out = pd.concat(parts, ignore_index=True)
    out["interval"] = out["interval"].fillna("")
    return out
