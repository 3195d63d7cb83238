"""Is a hotspot's rise more than chance? An exact test of two Poisson counts over equal periods.

If reports arrive in a cell at the same rate in both periods, then, given the total n = count +
previous, the current period's count is Binomial(n, 1/2) (the conditional test for two Poisson
rates, Przyborowski and Wilenski, 1940): the p-value of a rise is P(X >= count). It is computed
exactly, term by term in log space (no new dependency: scipy is not one, and this is a few lines),
summing from whichever tail is shorter so that a count of 100,000 costs a few thousand terms.
"""

from __future__ import annotations

import math

# Below these p-values a rise is called significant, and very significant.
RISING_P = 0.05
STRONG_P = 0.01
# A sum stops when its terms no longer change it.
_NEGLIGIBLE = 1e-17


def _tail(start: int, stop: int, step: int, n: int) -> float:
    """Sum of Binomial(n, 1/2) probabilities from ``start`` towards ``stop`` (terms decreasing)."""
    total = 0.0
    log_half_n = n * math.log(2)
    for k in range(start, stop, step):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - log_half_n)
        total += term
        if term < total * _NEGLIGIBLE:
            break
    return total


def rise_p_value(count: int, previous: int) -> float:
    """One-sided p-value that ``count`` this period exceeds ``previous`` in an equal period by chance."""
    n = count + previous
    if count <= 0:
        return 1.0
    if 2 * count > n:  # the upper tail, whose terms fall from count upwards
        return min(1.0, _tail(count, n + 1, 1, n))
    # The upper tail holds half the mass or more: one less the lower tail, whose terms fall downwards.
    return max(0.0, 1.0 - _tail(count - 1, -1, -1, n))


def confidence(p_value: float) -> str:
    """A rise in plain words: ``strong`` (p < 0.01), ``moderate`` (p < 0.05) or ``none`` (could be chance)."""
    if p_value < STRONG_P:
        return "strong"
    if p_value < RISING_P:
        return "moderate"
    return "none"
