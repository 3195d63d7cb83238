"""Council lighting exports over HTTP: scope, jobs, files GDAL opens, counts, privacy, expiry."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyogrio
import pytest
import shapely
from sqlalchemy import select, text

from backend.audit.models import AuditEntry
from backend.exports import service as exports
from backend.exports.models import Export
from backend.extensions import db
from tests.exports.helpers import (
    SECRET,
    add_report,
    built,
    export_body,
    export_file,
    read_features,
    request,
    run_outbox,
)
from tests.factories import CAMDEN_TOWN, PECKHAM

LONDON = ZoneInfo("Europe/London")
FIELDS = ["rank", "cell", "report_count", "poor_lighting_count", "night_share", "first_reported", "last_reported",
          "priority_score"]
# A small polygon inside Southwark, and one reaching into Lambeth.
INSIDE_SOUTHWARK = {"type": "Polygon", "coordinates": [[[-0.075, 51.470], [-0.065, 51.470], [-0.065, 51.478],
                                                         [-0.075, 51.478], [-0.075, 51.470]]]}
ACROSS_THE_BORDER = {"type": "Polygon", "coordinates": [[[-0.125, 51.460], [-0.065, 51.460], [-0.065, 51.478],
                                                          [-0.125, 51.478], [-0.125, 51.460]]]}


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


def as_ints(row: dict) -> dict:
    """CSV attributes come back from GDAL as text: compare them as numbers."""
    out = dict(row)
    for name in ("rank", "report_count", "poor_lighting_count", "priority_score"):
        out[name] = int(out[name])
    out["night_share"] = float(out["night_share"])
    return out


# -- the contract: who may ask for what -------------------------------------------------------------

def test_council_exports_its_own_area_answered_202_queued(client, southwark):
    response = client.post("/api/v1/exports", json=export_body(), headers=southwark.headers())
    assert response.status_code == 202
    body = response.json
    assert response.headers["Location"] == f"/api/v1/exports/{body['id']}"
    assert body["status"] == "queued" and body["progress"] == 0
    assert body["council"] == "E09000028" and body["format"] == "geojson"
    assert body["from"] == "2026-01-01" and body["to"] == "2026-12-31"
    assert body["download_url"] is None
    assert body["min_reporters"] == 1  # internal use keeps every place


@pytest.mark.parametrize("overrides, status", [
    ({"council": "E09000007"}, 403),  # another council's area
    ({"council": None, "area": ACROSS_THE_BORDER}, 403),  # a polygon reaching outside its own
    ({"council": None, "area": INSIDE_SOUTHWARK}, 202),
])
def test_council_may_export_only_its_own_area(client, southwark, overrides, status):
    response = client.post("/api/v1/exports", json=export_body(**overrides), headers=southwark.headers())
    assert response.status_code == status, response.json
    if status == 403:
        assert "own area" in response.json["message"]
        assert db.session.scalar(select(Export.id)) is None  # nothing recorded, nothing queued


@pytest.mark.parametrize("overrides", [{"council": "E09000007"}, {"council": None, "area": ACROSS_THE_BORDER}])
def test_staff_may_export_any_area(client, staff, overrides):
    assert client.post("/api/v1/exports", json=export_body(**overrides), headers=staff.headers()).status_code == 202


@pytest.mark.parametrize("who, status", [("anonymous", 401), ("commuter", 403)])
def test_commuters_and_strangers_may_not_export(client, commuter, who, status):
    headers = commuter.headers() if who == "commuter" else {}
    assert client.post("/api/v1/exports", json=export_body(), headers=headers).status_code == status
    assert client.get("/api/v1/exports", headers=headers).status_code == status


@pytest.mark.parametrize("overrides, field", [
    ({"kind": "heatmap"}, "kind"),
    ({"kind": None}, "kind"),
    ({"format": "shp"}, "format"),
    ({"format": None}, "format"),
    ({"council": "Southwark"}, "council"),
    ({"council": "E09999999"}, "council"),  # well-formed, but no such area
    ({"council": None}, "_schema"),  # neither council nor area
    ({"area": INSIDE_SOUTHWARK}, "_schema"),  # both
    ({"from": "2026-13-01"}, "from"),
    ({"from": None}, "from"),
    ({"to": None}, "to"),
    ({"from": "2026-12-31", "to": "2026-01-01"}, "from"),
    ({"from": "2000-01-01", "to": "2026-01-01"}, "from"),  # more than ten years
    ({"colour": "red"}, "colour"),
    ({"council": None, "area": {"type": "Polygon", "coordinates": [[[0, 51], [1, 51], [0, 52], [1, 52], [0, 51]]]}}, "area"),
    ({"council": None, "area": {"type": "Polygon", "coordinates": [[[-9, 50], [0, 50], [0, 58], [-9, 58], [-9, 50]]]}},
     "area"),  # more than 5 degrees
])
def test_bad_export_requests_answer_422_naming_the_field(client, staff, overrides, field):
    response = client.post("/api/v1/exports", json=export_body(**overrides), headers=staff.headers())
    assert response.status_code == 422, response.json
    assert field in response.json["errors"]


def test_status_is_visible_to_its_requester_and_staff_only(client, southwark, camden, staff, commuter):
    created = request(client, southwark)
    url = f"/api/v1/exports/{created['id']}"
    assert client.get(url, headers=southwark.headers()).status_code == 200
    assert client.get(url, headers=staff.headers()).status_code == 200
    assert client.get(url, headers=camden.headers()).status_code == 404  # not 403: its existence does not leak
    assert client.get(url + "/download", headers=camden.headers()).status_code == 404
    assert client.get(url, headers=commuter.headers()).status_code == 403
    assert client.get(f"/api/v1/exports/{uuid.uuid4()}", headers=staff.headers()).status_code == 404
    assert [e["id"] for e in client.get("/api/v1/exports", headers=southwark.headers()).json] == [created["id"]]
    assert client.get("/api/v1/exports", headers=camden.headers()).json == []


def test_download_before_the_file_is_ready_answers_409_with_retry_after(client, southwark):
    created = request(client, southwark)
    response = client.get(f"/api/v1/exports/{created['id']}/download", headers=southwark.headers())
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "5"
    assert "queued" in response.json["message"]


def test_requests_and_downloads_are_audited(client, southwark):
    status, _ = built(client, southwark, format="csv")
    download = client.get(status["download_url"], headers=southwark.headers())
    assert download.status_code == 200
    # A council's file is kept by no shared cache (nor stored by the browser beyond the download).
    assert download.headers["Cache-Control"] == "private, no-store"
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(e.action, e.actor_uid, e.actor_role, e.subject_id) for e in entries] == [
        ("export.requested", southwark.uid, "council", status["id"]),
        ("export.downloaded", southwark.uid, "council", status["id"]),
    ]
    assert entries[0].details["council"] == "E09000028" and entries[0].details["format"] == "csv"
    assert entries[0].details["period"] == ["2026-01-01", "2026-12-31"]


# -- the files ---------------------------------------------------------------------------------------

@pytest.fixture
def peckham_reports(commuter, other_commuter):
    """Three reports in Peckham (two in one cell), one in Camden, one rejected, one outside the period."""
    lon, lat = PECKHAM
    ids = [
        add_report(commuter.uid, lon, lat, local(2026, 12, 10, 18), factors=("poor_lighting", "isolated")),
        add_report(other_commuter.uid, lon + 0.00001, lat, local(2026, 6, 10, 18)),
        add_report(commuter.uid, lon + 0.003, lat + 0.002, local(2026, 3, 1, 23, 30), factors=("poor_lighting",)),
        add_report(commuter.uid, *CAMDEN_TOWN, local(2026, 5, 1, 22)),
        add_report(commuter.uid, lon - 0.003, lat, local(2026, 5, 1, 22)),
        add_report(commuter.uid, lon + 0.006, lat, local(2025, 12, 31, 12)),
    ]
    db.session.execute(text("UPDATE reports SET status = 'rejected' WHERE id = :id"), {"id": ids[4]})
    db.session.commit()
    return ids


@pytest.mark.parametrize("fmt, media_type, extension", [
    ("geojson", "application/geo+json", "geojson"),
    ("csv", "text/csv", "csv"),
    ("gpkg", "application/geopackage+sqlite3", "gpkg"),
])
def test_every_format_opens_in_gdal_with_the_ranked_places(client, southwark, peckham_reports, tmp_path, fmt,
                                                          media_type, extension):
    status, path = built(client, southwark, format=fmt)
    assert status["rows"] == 2 and status["places"] == "cells" and status["progress"] == 100
    assert status["download_url"] == f"/api/v1/exports/{status['id']}/download"
    expires = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < expires - datetime.now(timezone.utc) <= timedelta(days=7)

    response = client.get(status["download_url"], headers=southwark.headers())
    assert response.status_code == 200
    assert response.mimetype == media_type
    assert f"safetravel-lighting-E09000028-2026-01-01-2026-12-31.{extension}" in response.headers["Content-Disposition"]
    downloaded = tmp_path / f"export.{extension}"
    downloaded.write_bytes(response.data)

    info = pyogrio.read_info(str(downloaded))
    assert info["features"] == 2
    assert info["crs"] == (None if fmt == "csv" else "EPSG:4326")  # CSV: WGS 84 longitude/latitude, by convention
    assert [f for f in info["fields"] if f not in ("lon", "lat", "wkt")] == FIELDS
    rows = [as_ints(r) for r in read_features(downloaded)]
    # The Peckham cell holds a winter-evening report with poor lighting (after dark) and a summer-evening
    # one (daylight): 2 reports + 2 for poor lighting + 1 after dark = 5. The other: 1 + 2 + 1 = 4.
    assert [(r["rank"], r["report_count"], r["poor_lighting_count"], r["night_share"], r["first_reported"],
             r["last_reported"], r["priority_score"]) for r in rows] == [
        (1, 2, 1, 0.5, "2026-06-10", "2026-12-10", 5),
        (2, 1, 1, 1.0, "2026-03-01", "2026-03-01", 4),
    ]
    cell = shapely.from_wkb(rows[0]["geometry"])
    assert cell.geom_type == "Polygon" and cell.contains(shapely.Point(*PECKHAM))
    west, south, east, north = cell.bounds
    assert 45 < (east - west) * 111_320 * 0.622 < 50 and 45 < (north - south) * 111_320 < 50  # about 48 m a side


def test_geojson_is_rfc_7946(client, southwark, peckham_reports):
    _, path = built(client, southwark, format="geojson")
    document = json.loads(path.read_text())
    assert document["type"] == "FeatureCollection" and "crs" not in document
    polygon = shapely.geometry.shape(document["features"][0]["geometry"])
    assert polygon.exterior.is_ccw  # the right-hand rule
    lon, lat = document["features"][0]["geometry"]["coordinates"][0][0]
    assert -0.2 < lon < 0 and 51.4 < lat < 51.6  # longitude first


def test_csv_has_wkt_and_a_representative_point(client, southwark, peckham_reports):
    _, path = built(client, southwark, format="csv")
    header, first = path.read_text().splitlines()[:2]
    assert header == ",".join(FIELDS + ["lon", "lat", "wkt"])
    values = first.split(",", len(FIELDS) + 2)
    lon, lat, wkt = float(values[-3]), float(values[-2]), values[-1].strip('"')
    assert shapely.from_wkt(wkt).contains(shapely.Point(lon, lat))


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_no_identity_text_or_exact_time_in_any_format(client, southwark, commuter, other_commuter, peckham_reports, fmt):
    _, path = built(client, southwark, format=fmt)
    info = pyogrio.read_info(str(path))
    assert set(info["fields"]) <= {*FIELDS, "lon", "lat", "wkt"}
    assert "OFTDateTime" not in info["ogr_types"] and "OFTTime" not in info["ogr_types"]  # dates only
    content = path.read_bytes()
    author_ids = db.session.scalars(text("SELECT author_id::text FROM reports")).all()
    for needle in [SECRET, commuter.uid, other_commuter.uid, *peckham_reports, *author_ids]:
        assert needle.encode() not in content, needle
    if fmt != "gpkg":  # (a GeoPackage's own tables have a description column and timestamps)
        for needle in ["description", "author", "occurred", "18:00", "T17:00", "T18:00"]:
            assert needle.encode() not in content, needle


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_an_export_with_no_reports_is_a_valid_empty_file(client, camden, fmt):
    status, path = built(client, camden, council="E09000007", format=fmt)
    assert status["rows"] == 0
    assert pyogrio.read_info(str(path))["features"] == 0


def test_a_report_just_outside_the_area_is_excluded(client, southwark, commuter):
    # Around a point of Southwark's boundary, 10 m away: one point inside, one outside.
    around = db.session.execute(text("""
        WITH b AS (
            SELECT geom, ST_ClosestPoint(ST_Boundary(geom), ST_SetSRID(ST_MakePoint(-0.11, 51.47), 4326)) AS p
            FROM council_areas WHERE code = 'E09000028'
        ), ring AS (
            SELECT ST_Project(b.p::geography, 10, radians(a))::geometry AS q, b.geom FROM b, generate_series(0, 345, 15) AS a
        )
        SELECT ST_Intersects(geom, q) AS inside, ST_X(q) AS lon, ST_Y(q) AS lat FROM ring""")).all()
    inside = next(r for r in around if r.inside)
    outside = next(r for r in around if not r.inside)
    add_report(commuter.uid, inside.lon, inside.lat, local(2026, 11, 1, 21))
    add_report(commuter.uid, outside.lon, outside.lat, local(2026, 11, 1, 21))
    status, path = built(client, southwark, format="geojson")
    assert status["rows"] == 1
    [row] = read_features(path)
    assert row["report_count"] == 1
    assert shapely.from_wkb(row["geometry"]).contains(shapely.Point(inside.lon, inside.lat))


def test_night_share_follows_the_sun_not_the_clock(client, staff, commuter):
    lon, lat = PECKHAM
    points = {  # 200 m apart: a cell each
        # 18:00 in London: after sunset in December, before it in June (about 21:15).
        "winter 18:00": (lon, local(2026, 12, 10, 18)),
        "summer 18:00": (lon + 0.003, local(2026, 6, 10, 18)),
        # Either side of the winter sunset (15:51 in Peckham on 10 December): minutes count, not the hour.
        "winter 15:47": (lon + 0.006, local(2026, 12, 10, 15, 47)),
        "winter 15:55": (lon + 0.009, local(2026, 12, 10, 15, 55)),
    }
    for x, at in points.values():
        add_report(commuter.uid, x, lat, at)
    _, path = built(client, staff, format="geojson")
    share = {}
    for row in read_features(path):
        cell = shapely.from_wkb(row["geometry"])
        name = next(n for n, (x, _) in points.items() if cell.contains(shapely.Point(x, lat)))
        share[name] = row["night_share"]
    assert share == {"winter 18:00": 1.0, "summer 18:00": 0.0, "winter 15:47": 0.0, "winter 15:55": 1.0}


def test_a_route_counts_once_on_every_cell_it_crosses_inside_the_area(client, southwark, commuter):
    lon, lat = PECKHAM
    # An L-shaped walk of about 500 m that doubles back over its first cells.
    route = [(lon, lat), (lon + 0.004, lat), (lon + 0.004, lat + 0.002), (lon + 0.0041, lat + 0.00001)]
    add_report(commuter.uid, lon, lat, local(2026, 11, 1, 22), route=route, factors=("poor_lighting",))
    status, path = built(client, southwark, format="geojson")
    rows = read_features(path)
    assert {r["report_count"] for r in rows} == {1}
    cells = shapely.union_all([shapely.from_wkb(r["geometry"]) for r in rows])
    assert cells.covers(shapely.LineString(route))
    assert status["rows"] == len(rows) >= 10


# -- counts equal a brute-force count ----------------------------------------------------------------

_BRUTE_FORCE = text("""
    WITH e AS (SELECT area FROM exports WHERE id = :export_id),
    cells AS (
        SELECT x, y, ST_TileEnvelope(19, x, y) AS cell
        FROM generate_series(:x0, :x1) AS x, generate_series(:y0, :y1) AS y
    )
    SELECT x, y, count(*) AS report_count, count(*) FILTER (WHERE 'poor_lighting' = ANY (r.factors)) AS poor_lighting_count
    FROM cells CROSS JOIN e JOIN reports r ON r.status <> 'rejected'
     AND (
        (ST_Intersects(e.area, r.location) AND ST_Intersects(cell, ST_Transform(r.location, 3857)))
        OR (r.route IS NOT NULL AND ST_Relate(ST_Transform(ST_Intersection(r.route, e.area), 3857), cell, '1********'))
     )
    GROUP BY x, y
""")


def test_counts_equal_a_brute_force_count_over_the_raw_reports(client, southwark, commuter):
    # Random points and walks around the Southwark/Lambeth border near Peckham and Camberwell.
    rng = random.Random(5)
    west, south, east, north = -0.100, 51.468, -0.080, 51.480
    for _ in range(120):
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        route = None
        if rng.random() < 0.4:
            route = [(lon, lat)]
            for _ in range(rng.randint(1, 5)):
                route.append((route[-1][0] + rng.uniform(-0.002, 0.002), route[-1][1] + rng.uniform(-0.0015, 0.0015)))
            if not shapely.LineString(route).is_simple:
                route = None
        factors = ("poor_lighting",) if rng.random() < 0.4 else ()
        add_report(commuter.uid, lon, lat, local(2026, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23)),
                   route=route, factors=factors)
    status, path = built(client, southwark, format="gpkg")
    exported = {}
    for row in read_features(path):
        _, x, y = row["cell"].split("/")
        exported[(int(x), int(y))] = (row["report_count"], row["poor_lighting_count"])
    xs, ys = [k[0] for k in exported], [k[1] for k in exported]
    brute = {(r.x, r.y): (r.report_count, r.poor_lighting_count) for r in db.session.execute(_BRUTE_FORCE, {
        "export_id": status["id"], "x0": min(xs) - 30, "x1": max(xs) + 30, "y0": min(ys) - 30, "y1": max(ys) + 30})}
    assert len(exported) > 100
    assert exported == brute


# -- expiry ------------------------------------------------------------------------------------------

def test_expired_files_are_deleted_and_answer_410(client, southwark, peckham_reports):
    from worker import jobs

    status, path = built(client, southwark, format="csv")
    fresh, _ = built(client, southwark, format="geojson")
    db.session.execute(text("UPDATE exports SET expires_at = now() - interval '1 minute' WHERE id = :id"),
                       {"id": status["id"]})
    db.session.commit()
    with client.application.app_context():
        assert jobs.purge_exports() == 1  # the scheduled job: deletes, and commits
    assert not path.exists()
    assert client.get(status["download_url"], headers=southwark.headers()).status_code == 410
    after = client.get(f"/api/v1/exports/{status['id']}", headers=southwark.headers()).json
    assert after["download_url"] is None and after["status"] == "done"  # the record stays
    assert client.get(fresh["download_url"], headers=southwark.headers()).status_code == 200
    with client.application.app_context():
        assert jobs.purge_exports() == 0


def test_purge_job_is_scheduled():
    from backend import queues
    from worker import jobs
    from worker.schedule import PERIODIC

    assert (jobs.purge_exports, queues.MAINTENANCE, 3600) in PERIODIC


def test_a_retried_build_rewrites_the_file_whole(client, southwark, peckham_reports):
    status, path = built(client, southwark, format="geojson")
    path.write_text("half a file")
    db.session.execute(text("UPDATE exports SET status = 'running', file_name = NULL WHERE id = :id"), {"id": status["id"]})
    with client.application.app_context():
        exports.build_export(status["id"])
    assert len(json.loads(path.read_text())["features"]) == 2
    assert not list(path.parent.glob(f"{status['id']}.part.*"))


def test_a_failed_build_says_why_and_leaves_no_file(client, southwark, monkeypatch, real_commits):
    created = request(client, southwark, format="gpkg")

    def full_disk(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("backend.exports.writers.GeoPackageWriter._write_arrays", full_disk)
    with pytest.raises(OSError):
        run_outbox(client.application)
    db.session.remove()
    status = client.get(f"/api/v1/exports/{created['id']}", headers=southwark.headers()).json
    assert status["status"] == "failed" and status["error"] == "OSError: No space left on device"
    assert status["download_url"] is None
    assert not list(export_file(client.application, created["id"]).parent.glob(f"{created['id']}*"))
    download = client.get(f"/api/v1/exports/{created['id']}/download", headers=southwark.headers())
    assert download.status_code == 409 and "No space left" in download.json["message"]
    # The outbox still holds the task: the worker tries again (tests/worker cover the retries).
    assert db.session.scalar(text("SELECT attempts FROM outbox WHERE done_at IS NULL")) == 1


def test_progress_rises_as_the_file_is_written(client, southwark, commuter, monkeypatch):
    lon, lat = PECKHAM
    for i in range(12):
        add_report(commuter.uid, lon + 0.001 * i, lat, local(2026, 11, 1, 21))
    created = request(client, southwark, format="csv")
    updates = []
    monkeypatch.setattr(exports, "FETCH_ROWS", 3)
    monkeypatch.setattr(exports, "PROGRESS_EVERY_S", 0)
    monkeypatch.setattr(exports, "_set", lambda export_id, **values: updates.append(values))
    with client.application.app_context():
        exports.build_export(created["id"])
        db.session.commit()  # as the outbox task does
    assert updates[0]["status"] == "running" and updates[0]["progress"] == 0
    progress = [u["progress"] for u in updates[1:]]
    assert progress == [32, 55, 77, 99]  # 10% for the query, then 12 rows in batches of 3
    status = client.get(f"/api/v1/exports/{created['id']}", headers=southwark.headers()).json
    assert status["progress"] == 100 and status["rows"] == 12


def test_a_file_to_publish_leaves_out_places_fewer_people_reported(client, southwark):
    lon, lat = PECKHAM
    for person in range(3):  # one place three people reported ...
        add_report(f"person-{person}", lon, lat, local(2026, 11, 1, 21))
    for n in range(5):  # ... and one where one person reported five times
        add_report("lone", lon + 0.003, lat, local(2026, 11, 1, 21 + n % 3))
    everything, path = built(client, southwark, format="geojson")
    assert everything["rows"] == 2 and sorted(r["report_count"] for r in read_features(path)) == [3, 5]
    published, path = built(client, southwark, format="geojson", min_reporters=3)
    assert published["min_reporters"] == 3 and published["rows"] == 1
    [row] = read_features(path)
    assert (row["rank"], row["report_count"]) == (1, 3)


@pytest.mark.parametrize("value", [0, 101, "five"])
def test_min_reporters_out_of_range_is_422(client, southwark, value):
    response = client.post("/api/v1/exports", json=export_body(min_reporters=value), headers=southwark.headers())
    assert response.status_code == 422 and "min_reporters" in response.json["errors"]
