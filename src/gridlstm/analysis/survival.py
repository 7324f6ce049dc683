"""Time to a threshold when some runs never reach it: Kaplan-Meier medians and the log-rank
test (scipy.stats), for a metric such as samples until validation exact-match first reaches
0.99.

Why: a run still unsolved at its cap is not a missing value and not a time equal to the cap;
it says only "more than the cap" (right-censored). Dropping it flatters the arm that fails
more often; counting it at the cap shortens its time. The log-rank test compares the two
arms' whole survival curves with censoring taken into account, and the Kaplan-Meier median
says which arm reaches the threshold sooner (where fewer than half of an arm's runs reach it,
its median is not reached and the share that did decides the direction).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from scipy import stats


def _data(times: Sequence[float], reached: Sequence[bool]) -> stats.CensoredData:
    return stats.CensoredData(
        uncensored=[t for t, r in zip(times, reached, strict=True) if r],
        right=[t for t, r in zip(times, reached, strict=True) if not r],
    )


def median(times: Sequence[float], reached: Sequence[bool]) -> float:
    """The Kaplan-Meier median: the first time at which at most half the runs have not yet
    reached the threshold; ``inf`` where that never happens within the records."""
    if not any(reached):
        return math.inf
    curve = stats.ecdf(_data(times, reached)).sf
    for time, left in zip(curve.quantiles, curve.probabilities, strict=True):
        if left <= 0.5:
            return float(time)
    return math.inf


def share(reached: Sequence[bool]) -> float:
    """The share of runs that reached the threshold."""
    return sum(reached) / len(reached) if reached else math.nan


def logrank(
    a: tuple[Sequence[float], Sequence[bool]], b: tuple[Sequence[float], Sequence[bool]]
) -> float:
    """The two-sided log-rank p between two arms' (times, reached); nan where no run of
    either arm reached the threshold (the test has no event to compare)."""
    if not (any(a[1]) or any(b[1])):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.logrank(_data(*a), _data(*b), alternative="two-sided").pvalue)


def sooner(
    a: tuple[Sequence[float], Sequence[bool]], b: tuple[Sequence[float], Sequence[bool]]
) -> int:
    """Which arm reaches the threshold sooner: 1 for ``a``, -1 for ``b``, 0 for neither.
    By the Kaplan-Meier medians; where neither arm's median is reached (or they are equal),
    by the share of runs that reached the threshold."""
    first, second = median(*a), median(*b)
    if first != second:
        return 1 if first < second else -1
    more, fewer = share(a[1]), share(b[1])
    return 0 if more == fewer else (1 if more > fewer else -1)


def power(
    shares: tuple[float, float],
    span: tuple[float, float],
    cap: float,
    runs: int = 10,
    alpha: float = 0.05,
    trials: int = 3000,
    seed: int = 0,
) -> float:
    """The chance that `logrank` gives p below ``alpha`` between two arms of ``runs`` runs,
    by simulation: each run of an arm reaches the threshold with the arm's share (of
    ``shares``), at a time uniform over ``span``, else is censored at ``cap``. Why: a
    confirmatory stage's "not shown" says little where the stage could rarely have shown
    its expected difference; this puts a number on how rarely (before declaring, or after)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def arm(solved_share: float) -> tuple[list[float], list[bool]]:
        reached = (rng.random(runs) < solved_share).tolist()
        times = rng.uniform(*span, runs)
        return [t if r else cap for t, r in zip(times, reached, strict=True)], reached

    found = [logrank(arm(shares[0]), arm(shares[1])) for _ in range(trials)]
    return sum(p < alpha for p in found) / trials  # nan (no run reached it) counts as not
