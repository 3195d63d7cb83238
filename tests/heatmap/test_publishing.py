"""The public heatmap publishes whole units (public cell, local ISO week, category) of at least k people,
with noise no repetition averages away: no pair of windows isolates fewer than k people (issue 17)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from backend.heatmap import grid, publishing
from backend.heatmap.grid import morton_one
from tests.factories import BRIXTON, PECKHAM, Caller
from tests.heatmap.helpers import add_report

WEEK1 = date(2026, 11, 2)  # a Monday; November is GMT in London, so UTC days are local days
WEEK2 = WEEK1 + timedelta(days=7)
WEEK3 = WEEK2 + timedelta(days=7)


def report(person: str, day: date, category: str = "harassment", where=PECKHAM, hour: int = 22) -> str:
    """A report filed an hour after it happened (so it counts in its week's public unit)."""
    occurred = datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)
    return add_report(person, where[0], where[1], occurred, category, filed_at=occurred + timedelta(hours=1))


def public(client, **params) -> dict:
    response = client.get("/api/v1/public/heatmap", query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def published(body: dict) -> list[tuple[str, int]]:
    return sorted((json.dumps(f["geometry"], sort_keys=True), f["properties"]["count"]) for f in body["features"])


def true_plus_noise(client, reports: int, unit: tuple[int, date, str]) -> int:
    settings = client.application.config["SETTINGS"]
    noise = publishing.unit_noise(settings.public_noise_secret.encode(), [unit],
                                  publishing.noise_scale(settings.public_epsilon))
    return reports + int(noise[0])


def public_q(where) -> int:
    return morton_one(*grid.lonlat_to_cell(*where, grid.PUBLIC_LEVEL))


def test_the_differencing_attack_of_the_issue_learns_nothing(client):
    # Six people report in a cell in week 1 (twice each: the noise cannot hide their unit); the next
    # week one person reports twice there.
    for person in range(6):
        report(f"person-{person}", WEEK1 + timedelta(days=2))
        report(f"person-{person}", WEEK1 + timedelta(days=5))
    lone = [report("lone", WEEK2 + timedelta(days=1)), report("lone", WEEK2 + timedelta(days=3))]
    assert lone
    week1 = public(client, **{"from": WEEK1.isoformat(), "to": (WEEK1 + timedelta(days=6)).isoformat()})
    weeks12 = public(client, **{"from": WEEK1.isoformat(), "to": (WEEK2 + timedelta(days=6)).isoformat()})
    assert published(week1) == published(weeks12) != []
    assert week1["weeks"] == {"from": "2026-W45", "to": "2026-W45", "first_day": "2026-11-02", "last_day": "2026-11-08"}
    assert weeks12["weeks"]["to"] == "2026-W46"
    # A few days apart: both windows snap to the same whole weeks, and say so.
    narrow = public(client, **{"from": "2026-11-04", "to": "2026-11-10"})
    wide = public(client, **{"from": "2026-11-03", "to": "2026-11-14"})
    assert narrow["weeks"] == wide["weeks"] == weeks12["weeks"]
    assert published(narrow) == published(wide) == published(week1)
    # The count shown is the unit's twelve reports with its noise; the lone person's two are never in it.
    unit = (public_q(PECKHAM), WEEK1, "harassment")
    assert [count for _, count in published(week1)] == [true_plus_noise(client, 12, unit)]


def test_categories_cannot_be_differenced_either(client):
    for person in range(6):
        report(f"person-{person}", WEEK1 + timedelta(days=1), "harassment")
        report(f"person-{person}", WEEK1 + timedelta(days=3), "harassment")
    for person in range(4):  # four people: their unit is never published
        report(f"spiked-{person}", WEEK1 + timedelta(days=1), "spiking")
    everything = public(client, **{"from": WEEK1.isoformat(), "to": WEEK1.isoformat()})
    harassment = public(client, **{"from": WEEK1.isoformat(), "to": WEEK1.isoformat(), "category": "harassment"})
    assert published(everything) == published(harassment) != []
    assert public(client, category="spiking")["features"] == []


def test_units_of_four_reporters_are_never_shown_however_the_window_is_chosen(client):
    # Four people a week in one cell, for three weeks: twelve people in all, never five in one unit.
    for week, people in ((WEEK1, "a"), (WEEK2, "b"), (WEEK3, "c")):
        for person in range(4):
            for n in range(10):
                report(f"{people}-{person}", week + timedelta(days=n % 7), ("harassment", "spiking")[n % 2])
    days = [WEEK1 - timedelta(days=1) + timedelta(days=i) for i in range(0, 24, 2)]
    for start in days:
        for end in (d for d in days if d >= start):
            for category in ((), ("harassment",), ("harassment", "spiking")):
                body = public(client, **{"from": start.isoformat(), "to": end.isoformat(), "category": list(category)})
                assert body["features"] == [], (start, end, category)
    assert public(client)["features"] == []


def test_a_repeated_query_gets_one_answer(client):
    for person in range(7):
        for n in range(person + 1):
            report(f"person-{person}", WEEK1 + timedelta(days=n % 7), where=BRIXTON)
    answers = {json.dumps(public(client, **{"from": "2026-11-01", "to": "2026-11-30"}), sort_keys=True) for _ in range(5)}
    assert len(answers) == 1
    unit = (public_q(BRIXTON), WEEK1, "harassment")
    assert [count for _, count in published(json.loads(answers.pop()))] == [true_plus_noise(client, 28, unit)]


def test_erasing_one_of_five_reporters_hides_the_unit(client):
    for person in range(5):
        for n in range(4):
            report(f"person-{person}", WEEK1 + timedelta(days=n))
    assert len(public(client)["features"]) == 1
    assert client.delete("/api/v1/me", headers=Caller("person-0").headers()).status_code == 204
    assert public(client)["features"] == []


def test_weeks_still_open_and_reports_filed_late_are_not_published(client, app):
    today = datetime.now(timezone.utc).date()
    recent = publishing.week_of(today) - timedelta(days=7)  # last week: still taking reports
    for person in range(6):
        report(f"now-{person}", recent, where=BRIXTON)
        # Filed weeks after the week ended: never counted publicly (the unit would grow after publication).
        occurred = datetime(WEEK1.year, WEEK1.month, WEEK1.day, 22, tzinfo=timezone.utc)
        add_report(f"late-{person}", PECKHAM[0], PECKHAM[1], occurred, filed_at=occurred + timedelta(days=21))
    body = public(client, **{"from": WEEK1.isoformat(), "to": today.isoformat()})
    assert body["features"] == []
    assert date.fromisoformat(body["weeks"]["last_day"]) < recent
    assert public(client, **{"from": today.isoformat()})["weeks"] is None  # no published week in it


def test_the_public_heatmap_says_its_threshold_and_epsilon(client):
    body = public(client)
    assert body["min_reporters"] == 5 and body["epsilon"] == 1.0 and body["features"] == []


# ---- the noise ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0])
def test_opendp_calibrates_the_scale_to_epsilon(epsilon):
    import opendp.prelude as dp

    scale = publishing.noise_scale(epsilon)
    assert scale == pytest.approx(1 / epsilon, rel=1e-6)
    measurement = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=scale)
    assert measurement.map(1) <= epsilon


def test_the_noise_over_many_units_follows_the_discrete_laplace_mechanism():
    """A chi-square goodness-of-fit test of 60,000 units' noise (fixed secret: deterministic) against the
    discrete Laplace distribution OpenDP's integer Laplace mechanism samples from at this scale."""
    scale = publishing.noise_scale(1.0)
    units = [(q, WEEK1 + timedelta(days=7 * (q % 50)), ("harassment", "spiking", "unsafe_route")[q % 3])
             for q in range(60_000)]
    noise = publishing.unit_noise(b"a fixed test secret, not the server's", units, scale)
    edges = np.arange(-6, 7)
    observed = np.asarray([(noise < -6).sum(), *[(noise == k).sum() for k in edges], (noise > 6).sum()])
    inner = publishing.mechanism_pmf(edges, scale)
    tail = (1 - inner.sum()) / 2
    expected = len(units) * np.asarray([tail, *inner, tail])
    chi2 = float((((observed - expected) ** 2) / expected).sum())
    assert chi2 < 34.53, chi2  # the 0.999 quantile of chi-square with 14 bins - 1 = 13 degrees of freedom
    p = np.exp(-1 / scale)
    assert noise.mean() == pytest.approx(0, abs=0.03)
    assert noise.var() == pytest.approx(2 * p / (1 - p) ** 2, rel=0.05)


def test_the_noise_depends_on_the_secret_and_the_unit_only():
    units = [(q, WEEK1, "harassment") for q in range(2000)]
    one = publishing.unit_noise(b"secret one", units, 1.0)
    assert (one == publishing.unit_noise(b"secret one", units, 1.0)).all()
    assert (one != publishing.unit_noise(b"secret two", units, 1.0)).mean() > 0.5
    assert (one != publishing.unit_noise(b"secret one", [(q, WEEK2, "harassment") for q in range(2000)], 1.0)).mean() > 0.5
