"""Nights as people live them (an hours range across midnight belongs to the day it starts on), and
hotspots that are named, leave out one-report noise and say whether a rise is more than chance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from math import comb

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.heatmap import grid
from backend.heatmap.significance import confidence, rise_p_value
from tests.factories import PECKHAM
from tests.heatmap.helpers import add_report

# November: London is on GMT, so these UTC times are the local times.
SUNDAY_0130 = datetime(2026, 11, 22, 1, 30, tzinfo=timezone.utc)  # Saturday night
FRIDAY_0130 = datetime(2026, 11, 20, 1, 30, tzinfo=timezone.utc)  # Thursday night
SATURDAY_2300 = datetime(2026, 11, 21, 23, 0, tzinfo=timezone.utc)  # Saturday night
SATURDAY_0130 = datetime(2026, 11, 21, 1, 30, tzinfo=timezone.utc)  # Friday night
BRIXTON = (-0.114888, 51.462618)  # Brixton station
WEEK = {"from": "2026-11-16", "to": "2026-11-29"}


@pytest.fixture
def nights():
    """One report in each of four places, each at one of the times above."""
    return {when: add_report(f"n{i}", PECKHAM[0] + 0.01 * i, PECKHAM[1], when)
            for i, when in enumerate((SUNDAY_0130, FRIDAY_0130, SATURDAY_2300, SATURDAY_0130))}


def _heatmap_total(client, staff, **params) -> int:
    body = client.get("/api/v1/heatmap", query_string={"zoom": 10, **params}, headers=staff.headers()).json
    return sum(f["properties"]["count"] for f in body["features"])


def test_friday_and_saturday_nights_take_sunday_0130_and_leave_friday_0130(client, staff, nights):
    nights_filter = {**WEEK, "days": "fri,sat", "hours": "22-4"}
    # Sunday 01:30 and Saturday 23:00 (Saturday night), Saturday 01:30 (Friday night); not Friday 01:30.
    assert _heatmap_total(client, staff, **nights_filter) == 3
    hotspots = client.get("/api/v1/hotspots", query_string={**nights_filter, "min_count": 1, "zoom": 16},
                          headers=staff.headers()).json["hotspots"]
    assert sum(h["count"] for h in hotspots) == 3
    # Saturday night alone: Saturday 23:00 and Sunday 01:30, not Saturday 01:30 (Friday night).
    assert _heatmap_total(client, staff, **{**nights_filter, "days": "sat"}) == 2
    # Thursday night is Friday 01:30.
    assert _heatmap_total(client, staff, **{**nights_filter, "days": "thu"}) == 1


def test_the_nights_rule_holds_in_tiles(client, staff, nights):
    z = 12
    x, y = grid.lonlat_to_cell(*PECKHAM, z)
    response = client.get(f"/api/v1/heatmap/tiles/{z}/{x}/{y}.mvt", query_string={"days": "fri,sat", "hours": "22-4"},
                          headers=staff.headers())
    features = mapbox_vector_tile.decode(response.data)["heatmap"]["features"]
    assert sum(f["properties"]["count"] for f in features) == 3


def test_from_and_to_count_a_night_on_the_day_it_started(client, staff, nights):
    saturday = {"from": "2026-11-21", "to": "2026-11-21"}
    assert _heatmap_total(client, staff, **saturday, hours="22-4") == 2  # Saturday 23:00 and Sunday 01:30
    assert _heatmap_total(client, staff, **saturday) == 2  # the calendar day: Saturday 01:30 and 23:00
    # A range that does not wrap midnight keeps calendar days.
    assert _heatmap_total(client, staff, **WEEK, days="sun", hours="0-4") == 1
    assert _heatmap_total(client, staff, **WEEK, days="sat", hours="0-4") == 1


def test_hotspots_are_named_by_station_street_and_borough(client, staff):
    db.session.execute(text("""
        INSERT INTO street_segments (name, geom, midpoint, length_m)
        VALUES ('Brixton Road', ST_GeomFromText('LINESTRING(-0.1150 51.4620, -0.1140 51.4630)', 4326),
                ST_SetSRID(ST_MakePoint(-0.1145, 51.4625), 4326), 130)"""))
    db.session.commit()
    for i in range(6):
        add_report(f"b{i}", *BRIXTON, SATURDAY_2300 - timedelta(hours=i))
    hotspot = client.get("/api/v1/hotspots", query_string={**WEEK, "zoom": 14},
                         headers=staff.headers()).json["hotspots"][0]
    assert hotspot["place"]["station"] == "Brixton" and hotspot["place"]["station_distance_m"] < 400
    assert hotspot["place"]["street"] == "Brixton Road"
    assert hotspot["place"]["borough"] == "Lambeth"
    west, south, east, north = hotspot["bounds"]
    assert west < BRIXTON[0] < east and south < BRIXTON[1] < north
    assert hotspot["geometry"]["type"] == "Polygon"


def test_a_hotspot_where_no_street_is_loaded_has_no_street(client, staff):
    for i in range(5):
        add_report(f"c{i}", *BRIXTON, SATURDAY_2300 - timedelta(hours=i))
    hotspot = client.get("/api/v1/hotspots", query_string=WEEK, headers=staff.headers()).json["hotspots"][0]
    assert hotspot["place"]["street"] is None and hotspot["place"]["station"] == "Brixton"


def test_one_report_cells_are_not_ranked_under_filters(client, staff):
    for i in range(5):
        add_report(f"s{i}", *BRIXTON, SATURDAY_2300 - timedelta(days=i % 2))
    add_report("lone", *PECKHAM, SATURDAY_2300)  # noise: one report in a cell of its own
    body = client.get("/api/v1/hotspots", query_string={**WEEK, "days": "fri,sat", "hours": "18-6"},
                      headers=staff.headers()).json
    assert body["min_count"] == 5
    assert [h["count"] for h in body["hotspots"]] == [5]
    assert all(h["count"] >= 5 for h in body["hotspots"])


def test_a_rise_is_significant_only_when_chance_is_unlikely(client, staff):
    this_week, last_week = {"from": "2026-11-16", "to": "2026-11-22"}, datetime(2026, 11, 12, 22, tzinfo=timezone.utc)
    for i in range(10):  # Brixton: 10 this week against 2 the week before
        add_report(f"r{i}", *BRIXTON, SATURDAY_2300 - timedelta(hours=i))
    for i in range(2):
        add_report(f"q{i}", *BRIXTON, last_week - timedelta(hours=i))
    for i in range(5):  # Peckham: 5 against 3
        add_report(f"t{i}", *PECKHAM, SATURDAY_2300 - timedelta(hours=i))
    for i in range(3):
        add_report(f"u{i}", *PECKHAM, last_week - timedelta(hours=i))
    spots = client.get("/api/v1/hotspots", query_string=this_week, headers=staff.headers()).json["hotspots"]
    brixton, peckham = spots
    assert (brixton["count"], brixton["previous_count"]) == (10, 2)
    assert brixton["rising"] is True and brixton["confidence"] == "moderate" and brixton["p_value"] == 0.0193
    assert (peckham["count"], peckham["previous_count"]) == (5, 3)
    assert peckham["rising"] is False and peckham["confidence"] == "none" and peckham["p_value"] > 0.3


@pytest.mark.parametrize("count, previous", [(5, 2), (10, 2), (1, 0), (5, 0), (7, 0), (20, 21), (50, 30), (0, 3),
                                             (7, 7), (300, 250)])
def test_the_p_value_is_the_exact_binomial_tail(count, previous):
    n = count + previous
    exact = sum(comb(n, k) for k in range(count, n + 1)) / 2**n
    assert rise_p_value(count, previous) == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_confidence_in_words():
    assert [confidence(p) for p in (0.001, 0.02, 0.05, 0.5)] == ["strong", "moderate", "none", "none"]
