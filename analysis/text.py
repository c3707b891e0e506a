"""Numbers from the ledger written as prose, the same way in the notebooks and in the manuscript.

A placeholder `{{ name | style }}` (or `{{ name | style:digits }}`) is replaced by the ledger entry
`name` formatted by `style`. Unknown names and styles are errors, never blanks, so a manuscript
cannot quietly lose a number. An entry the analysis could not estimate (no estimate, interval or
p-value: a model that did not fit, say; its warnings say why) prints as "not estimated", and so does
the interval of an estimate whose interval could not be computed; any other field missing from an entry
that has other numbers is an error, as the style does not suit that entry.

Styles (digits default in brackets):
- `est` [2]: the estimate; `est_ci` [2]: estimate with "(95% CI low to high)"; `ci` [2]: "low to high"
- `pct` [1]: a proportion as a percentage; `pct_ci` [1]: with its interval; `pp` [1]: a difference of
  proportions in percentage points; `pp_ci` [1]: with its interval
- `frac`: events/n of a proportion, with the percentage, e.g. "66/101 (65.3%)"
- `p`: a p-value in the journal's style ("p<0.001", "p=0.03"); `n`, `int`: whole numbers
- `nnt`: number needed to treat in Altman's notation, rounded up: "NNTB 2 (95% CI 2 to 3)" for a
  benefit, "NNTH ..." for a harm, and "NNTB 32 (95% CI NNTB 6 to infinity to NNTH 8)" when the
  interval of the risk difference includes zero
- `pub` [2]: the published value the entry reproduces, with its published interval; `pub_p`: its p-value

An entry hidden by disclosure control (its `suppressed` says which numbers and why: analysis/disclosure.py)
prints as the marker it says it is shown as ("*", "<10", "[REDACTED]"), the same as in the tables, in any
style that needs a hidden number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

from analysis.disclosure import marker_of
from analysis.errors import StudyError
from analysis.ledger import Entry

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\|\s*([a-z_]+)(?::(\d+))?\s*\}\}")
STYLES: dict[str, tuple[Callable[[Entry, int], str], int]] = {}
NOT_ESTIMATED = "not estimated"
# the numbers the styles print from an entry; an entry with none of them was not estimated
NUMBERS = ("estimate", "conf_low", "conf_high", "p_value")


class NotEstimated(ValueError):
    """The entry has no number to print: the analysis recorded it without an estimate."""


def style(name: str, digits: int = 2):
    def register(function):
        STYLES[name] = (function, digits)
        return function
    return register


def number(value: float, digits: int) -> str:
    """Fixed decimals, a true minus sign avoided (journals differ); -0.00 shown as 0.00."""
    text = f"{value:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def _need(entry: Entry, *fields: str) -> None:
    missing = [f for f in fields if getattr(entry, f) is None]
    if missing:
        if all(getattr(entry, f) is None for f in NUMBERS):
            raise NotEstimated
        raise ValueError(f"has no {', '.join(missing)}")


@style("est")
def _est(entry: Entry, digits: int) -> str:
    _need(entry, "estimate")
    return number(entry.estimate, digits)


def _no_interval(entry: Entry) -> bool:
    """An estimate whose interval could not be computed (a limit at infinity: an odds ratio with no
    events in one period, say), printed as such rather than refused."""
    return entry.estimate is not None and (entry.conf_low is None or entry.conf_high is None)


@style("ci")
def _ci(entry: Entry, digits: int) -> str:
    if _no_interval(entry):
        return NOT_ESTIMATED
    _need(entry, "conf_low", "conf_high")
    return f"{number(entry.conf_low, digits)} to {number(entry.conf_high, digits)}"


@style("est_ci")
def _est_ci(entry: Entry, digits: int) -> str:
    return f"{_est(entry, digits)} (95% CI {_ci(entry, digits)})"


@style("pct", 1)
def _pct(entry: Entry, digits: int) -> str:
    _need(entry, "estimate")
    return f"{number(100 * entry.estimate, digits)}%"


def _percent_interval(entry: Entry, digits: int, unit: str) -> str:
    if _no_interval(entry):
        return f"95% CI {NOT_ESTIMATED}"
    _need(entry, "conf_low", "conf_high")
    low, high = (number(100 * v, digits) for v in (entry.conf_low, entry.conf_high))
    return f"95% CI {low}{unit} to {high}{unit}"


@style("pct_ci", 1)
def _pct_ci(entry: Entry, digits: int) -> str:
    return f"{_pct(entry, digits)} ({_percent_interval(entry, digits, '%')})"


@style("pp", 1)
def _pp(entry: Entry, digits: int) -> str:
    _need(entry, "estimate")
    return f"{number(100 * entry.estimate, digits)} percentage points"


@style("pp_ci", 1)
def _pp_ci(entry: Entry, digits: int) -> str:
    return f"{_pp(entry, digits)} ({_percent_interval(entry, digits, '')})"


@style("frac", 1)
def _frac(entry: Entry, digits: int) -> str:
    _need(entry, "estimate", "n")
    events = round(entry.estimate * entry.n)
    return f"{events}/{entry.n} ({_pct(entry, digits)})"


@style("pub")
def _pub(entry: Entry, digits: int) -> str:
    """The published value the entry reproduces, with its interval when one was published."""
    if entry.published is None or entry.published.estimate is None:
        raise ValueError("has no published estimate")
    text = number(entry.published.estimate, digits)
    if entry.published.conf_low is not None and entry.published.conf_high is not None:
        text += f" (95% CI {number(entry.published.conf_low, digits)} to {number(entry.published.conf_high, digits)})"
    return text


@style("pub_p", 3)
def _pub_p(entry: Entry, digits: int) -> str:
    """The published p-value the entry reproduces, in the journal's style."""
    if entry.published is None or entry.published.p_value is None:
        raise ValueError("has no published p-value")
    return _p(entry.model_copy(update={"p_value": entry.published.p_value}), digits)


@style("p", 3)
def _p(entry: Entry, digits: int) -> str:
    _need(entry, "p_value")
    p = entry.p_value
    floor = 10 ** -digits
    if p < floor:
        return f"p<{floor:.{digits}f}"
    if p > 0.99:
        return "p>0.99"
    return f"p={number(p, 2 if p >= 0.01 else digits)}"


@style("n", 0)
def _n(entry: Entry, digits: int) -> str:
    _need(entry, "n")
    return f"{entry.n:,}"


@style("int", 0)
def _int(entry: Entry, digits: int) -> str:
    _need(entry, "estimate")
    return f"{round(entry.estimate):,}"


@style("nnt", 0)
def _nnt(entry: Entry, digits: int) -> str:
    """Altman's notation (BMJ 1998;317:1309), every number rounded up to a whole patient.

    A positive NNT is a benefit (NNTB), a negative one a harm (NNTH), as
    `analysis.stats.proportions.number_needed_to_treat` records them. The NNT interval is the reciprocal
    of the risk reduction's interval: when that includes zero, the NNT interval runs from the NNTB limit
    through infinity to the NNTH limit, and `conf_low` and `conf_high` have opposite signs (in either
    order). An empty limit is infinite (a risk-difference limit of exactly zero), and so is an empty
    estimate beside an interval through infinity (equal risks).
    """
    limits = [v for v in (entry.conf_low, entry.conf_high) if v is not None]
    if not limits:
        _need(entry, "conf_low", "conf_high")  # raises: an entry not estimated, or an NNT without interval
    benefit = sorted(v for v in limits if v > 0)
    harm = sorted(-v for v in limits if v < 0)
    crosses = bool(benefit and harm)
    if entry.estimate is None:
        inside = crosses
    else:
        # on the risk-reduction scale (1/NNT; an infinite limit is 0) the interval is an ordinary one
        reduction = sorted(1 / v for v in limits) if len(limits) == 2 else sorted((0.0, 1 / limits[0]))
        inside = reduction[0] <= 1 / entry.estimate <= reduction[1]
    if not inside:
        raise ValueError(f"has no interval that contains its estimate ({entry.estimate} is outside "
                         f"{entry.conf_low} to {entry.conf_high})")
    if crosses:
        interval = f"NNTB {math.ceil(benefit[0])} to infinity to NNTH {math.ceil(harm[0])}"
    else:
        interval = " to ".join([str(math.ceil(v)) for v in benefit or harm] + ["infinity"] * (2 - len(limits)))
    if entry.estimate is None:
        return f"infinity (95% CI {interval})"
    label = "NNTB" if entry.estimate > 0 else "NNTH"
    return f"{label} {math.ceil(abs(entry.estimate))} (95% CI {interval})"


def render(template: str, entries: Mapping[str, Entry], where: str = "text") -> str:
    """Replace every placeholder; any unknown name or style, or a value that cannot be shown, is an error."""
    problems: list[str] = []

    def replace(match: re.Match) -> str:
        name, style_name, digits = match.group(1), match.group(2), match.group(3)
        if name not in entries:
            problems.append(f"'{name}' is not in the ledger")
            return match.group(0)
        if style_name not in STYLES:
            problems.append(f"'{name}': unknown style '{style_name}' (styles: {', '.join(sorted(STYLES))})")
            return match.group(0)
        function, default = STYLES[style_name]
        entry = entries[name]
        try:
            return function(entry, int(digits) if digits else default)
        except ValueError as error:
            if entry.suppressed is not None:  # the number the style needs was hidden, not lost
                return marker_of(entry.suppressed)
            if isinstance(error, NotEstimated):
                return NOT_ESTIMATED
            problems.append(f"'{name}' {error}, which style '{style_name}' needs")
            return match.group(0)

    text = PLACEHOLDER.sub(replace, template)
    if problems:
        raise StudyError(f"{where}: {len(problems)} placeholder problem(s): " + "; ".join(problems))
    return text
