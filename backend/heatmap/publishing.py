"""The public heatmap's published units, and the noise on their counts (docs/privacy.md).

A unit is (public cell, local ISO week, category). What the public heatmap answers is always a sum of
whole published units:

- a unit is published only when at least ``PUBLIC_MIN_REPORTERS`` distinct people contributed to it,
  and its noisy count is at least as many (the threshold is applied after the noise);
- windows are snapped to whole weeks, and only *settled* weeks are answered: a report counts in a
  unit only when it was filed by ``SETTLE_DAYS`` days after its week ended, and a week is published
  only once that time has passed, so a published unit never grows. Two windows therefore differ by
  whole units of at least k people, and watching one unit over time shows no new report;
- each unit's count carries discrete Laplace noise (the geometric mechanism) calibrated by OpenDP to
  ``PUBLIC_EPSILON`` per unit for one report added or removed. The noise is drawn from an HMAC of the
  unit under a server secret: asking again gives the same answer, so it cannot be averaged away.

Erasing a person removes their rows from ``heatmap_public_units`` (cascade): the unit loses their
reports and their place among its reporters, and hides when fewer than k people remain.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import text

from backend.extensions import db
from backend.heatmap.grid import PUBLIC_LEVEL

SETTLE_DAYS = 7  # after its last day, a week takes reports for this long, then it is published
# In SQL, for the bulk rebuild: the same rule as counts_publicly().
COUNTS_PUBLICLY_SQL = f"{{filed}} <= date_trunc('week', {{day}})::date + {6 + SETTLE_DAYS}"


def week_of(day: date) -> date:
    """The Monday of a local day's ISO week: a unit's week."""
    return day - timedelta(days=day.weekday())


def counts_publicly(day: date, filed_day: date) -> bool:
    """Whether a report of this local day, filed on this local day, counts in its public unit: only
    when filed before its week is published (no published unit ever grows)."""
    return filed_day <= week_of(day) + timedelta(days=6 + SETTLE_DAYS)


def last_published_week(today: date) -> date:
    """The latest week whose units are published on this local day."""
    return week_of(today - timedelta(days=7 + SETTLE_DAYS))


def iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class Window:
    """The whole weeks a public request covers (Mondays, both ends included; ``first`` None: from the
    start); empty when no published week falls in it."""

    first: date | None
    last: date

    @classmethod
    def snapped(cls, from_day: date | None, to_day: date | None, today: date) -> "Window":
        latest = last_published_week(today)
        last = min(week_of(to_day), latest) if to_day else latest
        return cls(week_of(from_day) if from_day else None, last)

    @property
    def empty(self) -> bool:
        return self.first is not None and self.first > self.last

    def describe(self) -> dict[str, Any] | None:
        if self.empty:
            return None
        return {"from_": iso_week(self.first) if self.first else None, "to": iso_week(self.last),
                "first_day": self.first, "last_day": self.last + timedelta(days=6)}


# ---- the noise --------------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def noise_scale(epsilon: float) -> float:
    """The discrete Laplace scale OpenDP calibrates for ``epsilon`` on a count one report changes by 1."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
    scale = dp.binary_search_param(lambda s: dp.m.make_laplace(*space, scale=s), d_in=1, d_out=epsilon)
    assert dp.m.make_laplace(*space, scale=scale).map(1) <= epsilon
    return float(scale)


def discrete_laplace(u1: np.ndarray, u2: np.ndarray, scale: float) -> np.ndarray:
    """Discrete Laplace draws, P(k) = (1 - p) / (1 + p) * p^|k| with p = exp(-1/scale) (OpenDP's
    integer Laplace), from two uniforms in (0, 1) each: the difference of two geometric draws."""
    log_p = -1.0 / scale
    return (np.floor(np.log(u1) / log_p) - np.floor(np.log(u2) / log_p)).astype(np.int64)


def _uniforms(secret: bytes, unit: tuple[int, date, str]) -> tuple[float, float]:
    q, week, category = unit
    digest = hmac.new(secret, f"{q}|{week.isoformat()}|{category}".encode(), hashlib.sha256).digest()
    # 53 random bits each, shifted by half a step: never 0, never 1.
    return tuple(((int.from_bytes(digest[i:i + 8], "big") >> 11) + 0.5) / 2**53 for i in (0, 8))


def unit_noise(secret: bytes, units: Sequence[tuple[int, date, str]], scale: float) -> np.ndarray:
    """Each unit's noise: deterministic in the server secret and the unit, independent between units."""
    if not units:
        return np.zeros(0, dtype=np.int64)
    u = np.asarray([_uniforms(secret, unit) for unit in units], dtype=np.float64)
    return discrete_laplace(u[:, 0], u[:, 1], scale)


# ---- reading ----------------------------------------------------------------------------------------

def published_cells(window: Window, categories: tuple[str, ...] | None, area_where: list[str],
                    area_params: dict[str, Any], min_reporters: int, epsilon: float, secret: bytes,
                    ) -> list[dict[str, Any]]:
    """Public cells with their counts: each the sum of its published units' noisy counts in the window.
    ``area_where`` are conditions on ``u.q`` (the public cell), from heatmap.queries."""
    if window.empty:
        return []
    where = ["u.week <= :last", *area_where]
    params: dict[str, Any] = {**area_params, "last": window.last, "min_reporters": min_reporters}
    if window.first:
        where.append("u.week >= :first")
        params["first"] = window.first
    if categories:
        where.append("u.category = ANY(:categories)")
        params["categories"] = list(categories)
    reads = db.reads  # the standby when it is fit (backend/extensions.py)
    units = reads.execute(
        text(f"""
            SELECT u.q, u.week, u.category, sum(u.reports)::integer AS reports
            FROM heatmap_public_units u
            WHERE {' AND '.join(where)}
            GROUP BY u.q, u.week, u.category
            HAVING count(*) >= :min_reporters
        """),
        params,
    ).all()
    noisy = np.asarray([u.reports for u in units], dtype=np.int64) + unit_noise(
        secret, [(u.q, u.week, u.category) for u in units], noise_scale(epsilon))
    per_cell: dict[int, int] = defaultdict(int)
    for unit, count in zip(units, noisy.tolist()):
        if count >= min_reporters:  # thresholded after the noise
            per_cell[unit.q] += count
    if not per_cell:
        return []
    rows = reads.execute(
        text("""
            SELECT c.q, ST_AsGeoJSON(ST_Transform(
                       ST_TileEnvelope(:level, heatmap_cell_x(c.q), heatmap_cell_y(c.q)), 4326), 6) AS geometry
            FROM unnest(CAST(:qs AS bigint[])) AS c (q)
        """),
        {"level": PUBLIC_LEVEL, "qs": list(per_cell)},
    ).all()
    cells = [{"q": r.q, "count": per_cell[r.q], "geometry": r.geometry} for r in rows]
    return sorted(cells, key=lambda c: (-c["count"], c["q"]))


def mechanism_pmf(k: np.ndarray, scale: float) -> np.ndarray:
    """The discrete Laplace probability of each integer in ``k`` (for tests and docs)."""
    p = math.exp(-1.0 / scale)
    return (1 - p) / (1 + p) * p ** np.abs(k)
