"""Small numeric tools of the synthetic generator: distributions with given quartiles and means.

Values are built on an integer grid (MAI points; the harm score in tenths), sorted, with the order
statistics that decide each quartile fixed to the published value ("anchors") and the rest drawn
between their neighbours, so the published quartiles hold by construction. A greedy search then
moves free values one grid step at a time until a two-group mean difference and its Welch
confidence interval are as close to the published ones as the grid allows.

Quartile definitions (Hyndman and Fan 1996): type 6 is SPSS's (and Minitab's), h = (n + 1) q;
type 7 is R's and numpy's default, h = (n - 1) q + 1; the quantile is x[floor h] + (h - floor h)
(x[floor h + 1] - x[floor h]) with x 1-based and sorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

DEFINITIONS = {6: "weibull", 7: "linear"}  # numpy's names for Hyndman-Fan types 6 and 7


def quantile(values, q: float, definition: int) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q, method=DEFINITIONS[definition]))


def _h(n: int, q: float, definition: int) -> float:
    h = (n + 1) * q if definition == 6 else (n - 1) * q + 1
    return min(max(h, 1.0), float(n))


def _positions(n: int, q: float, definition: int) -> tuple[int, int, float]:
    """0-based order statistics that decide the quantile, and the weight of the upper one."""
    h = _h(n, q, definition)
    low = math.floor(h)
    fraction = h - low
    return low - 1, (min(low, n - 1) if fraction > 0 else low - 1), fraction


def anchors_for_quantile(n: int, q: float, value: float, scale: int) -> tuple[dict[int, int], str]:
    """Order statistics to fix (position -> value in grid units) so the q-quantile equals `value`.

    A value on the grid is given to every order statistic either definition uses, so types 6 and
    7 both give it. A value between grid points (e.g. -3.75 on whole MAI points) can only come from
    interpolation, which differs between definitions: then type 6 (SPSS) is targeted, and when no
    two grid values interpolate to it at this n, the nearest that two grid values give.
    """
    units = value * scale
    if abs(units - round(units)) < 1e-9:
        lows, highs = zip(*(_positions(n, q, d)[:2] for d in (6, 7)), strict=True)
        return dict.fromkeys(range(min(lows), max(highs) + 1), round(units)), "types 6 and 7"
    low, high, fraction = _positions(n, q, 6)
    if fraction == 0:
        return {low: round(units)}, "type 6, nearest possible"
    gaps = np.arange(1, 4 * scale + 1)
    lowers = np.round(units - fraction * gaps)
    misses = np.abs(lowers + fraction * gaps - units)
    best = int(np.argmin(misses))
    label = "type 6 only" if misses[best] < 1e-9 else "type 6, nearest possible"
    return {low: int(lowers[best]), high: int(lowers[best] + gaps[best])}, label


def merge_anchors(parts: list[dict[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in parts:
        for position, value in part.items():
            if merged.get(position, value) != value:
                raise ValueError(f"order statistic {position + 1} would need two values")
            merged[position] = value
    ordered = [merged[p] for p in sorted(merged)]
    if any(b < a for a, b in zip(ordered, ordered[1:], strict=False)):
        raise ValueError("quartile targets out of order for this many values")
    return merged


@dataclass
class Segmented:
    """Values with per-position bounds; free values stay within bounds, so sorting keeps anchors."""

    values: np.ndarray  # int64, grid units
    low: np.ndarray
    high: np.ndarray
    free: np.ndarray  # bool

    def sorted(self) -> np.ndarray:
        return np.sort(self.values)


def fill(rng: np.random.Generator, low: np.ndarray, high: np.ndarray, anchors: dict[int, int],
         tail_scale: float = 0.0) -> Segmented:
    """Values at n sorted positions: anchors fixed, others drawn between the neighbouring anchors
    and the positions' own bounds (`low`, `high`: arrays, grid units). With `tail_scale`, values
    beyond the outermost anchors decay from them exponentially (mean `tail_scale` units) instead
    of spreading evenly up to the bound."""
    n = len(low)
    fixed = np.full(n, np.nan)
    for position, value in anchors.items():
        fixed[position] = value
    left = np.concatenate([[-np.inf], np.fmax.accumulate(np.where(np.isnan(fixed), -np.inf, fixed))[:-1]])
    right = np.concatenate([np.fmin.accumulate(np.where(np.isnan(fixed), np.inf, fixed)[::-1])[::-1][1:], [np.inf]])
    lo = np.maximum(low, left)
    hi = np.minimum(high, right)
    free = np.isnan(fixed)
    if np.any(lo[free] > hi[free]) or np.any((fixed[~free] < low[~free]) | (fixed[~free] > high[~free])):
        raise ValueError("the quartile targets do not fit within the allowed values at these positions")
    uniform = lo + np.floor(rng.random(n) * (hi - lo + 1))
    values = uniform
    if tail_scale > 0:
        decay = np.round(rng.exponential(tail_scale, n))
        values = np.where(np.isinf(left), np.maximum(hi - decay, lo), values)
        values = np.where(np.isinf(right), np.minimum(lo + decay, hi), values)
    values = np.where(free, values, fixed)
    return Segmented(values.astype(np.int64), lo.astype(np.int64), hi.astype(np.int64), free)


@dataclass(frozen=True)
class Welch:
    difference: float
    low: float
    high: float


def welch(a: np.ndarray, b: np.ndarray) -> Welch:
    """Mean of a minus mean of b with Welch's 95% confidence interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = stats.t.ppf(0.975, df)
    d = a.mean() - b.mean()
    return Welch(float(d), float(d - t * se), float(d + t * se))


def fit_difference(a: Segmented, b: Segmented, target: Welch, tolerance: float, spread: float = 0.0,
                   max_steps: int = 20000) -> None:
    """Move free values of a and b one grid step at a time (greedy, in place) towards the target
    difference and interval; every term weighs by `tolerance` (half a unit of the published digit).

    Widening a distribution is cheapest by pushing its most extreme value further out, which would
    make one absurd outlier; `spread` charges each value's squared distance from where it started,
    so the moves are shared among many values."""
    na, nb = len(a.values), len(b.values)
    start = (a.values.copy(), b.values.copy())
    sums = [float(a.values.sum()), float(b.values.sum())]
    squares = [float((a.values.astype(float) ** 2).sum()), float((b.values.astype(float) ** 2).sum())]

    def loss(sa, qa, sb, qb):
        va = (qa - sa * sa / na) / (na - 1) / na
        vb = (qb - sb * sb / nb) / (nb - 1) / nb
        se = np.sqrt(va + vb)
        d = sa / na - sb / nb
        return ((d - target.difference) ** 2 + (d - t * se - target.low) ** 2
                + (d + t * se - target.high) ** 2) / tolerance**2

    for _ in range(max_steps):
        va = (squares[0] - sums[0] ** 2 / na) / (na - 1) / na
        vb = (squares[1] - sums[1] ** 2 / nb) / (nb - 1) / nb
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if va + vb > 0 else na + nb - 2
        t = stats.t.ppf(0.975, df)  # held for the step: one move barely changes the degrees of freedom
        best = (loss(sums[0], squares[0], sums[1], squares[1]) - 1e-12, None)
        for which, group in enumerate((a, b)):
            x = group.values.astype(float)
            for step in (1, -1):
                allowed = group.free & ((group.values + step <= group.high) if step > 0
                                        else (group.values + step >= group.low))
                if not allowed.any():
                    continue
                new_sum = sums[which] + step
                new_squares = squares[which] + 2 * step * x + 1
                if which == 0:
                    candidates = loss(new_sum, new_squares, sums[1], squares[1])
                else:
                    candidates = loss(sums[0], squares[0], new_sum, new_squares)
                candidates = candidates + spread * (2 * step * (x - start[which]) + 1)
                candidates = np.where(allowed, candidates, np.inf)
                j = int(np.argmin(candidates))
                if candidates[j] < best[0]:
                    best = (candidates[j], (which, j, step))
        if best[1] is None:
            return
        which, j, step = best[1]
        group = (a, b)[which]
        squares[which] += 2 * step * float(group.values[j]) + 1
        sums[which] += step
        group.values[j] += step


def quantile_map(template_sorted: np.ndarray, n: int) -> np.ndarray:
    """n sorted values with the template's distribution (its order statistics stretched to n)."""
    m = len(template_sorted)
    return template_sorted[(np.arange(n) * m) // n]


def clamp_to_anchors(values_sorted: np.ndarray, anchors: dict[int, int]) -> np.ndarray:
    """Fix anchors in sorted values and keep them sorted: below an anchor nothing exceeds it,
    above it nothing falls short of it."""
    values = values_sorted.copy()
    for position in sorted(anchors):
        value = anchors[position]
        values[:position] = np.minimum(values[:position], value)
        values[position] = value
        values[position + 1:] = np.maximum(values[position + 1:], value)
    return values
