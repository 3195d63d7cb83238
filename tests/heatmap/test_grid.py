"""The grid: cells are map tiles, keys are Morton codes, routes count in every cell they cross."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text

from backend.extensions import db
from backend.heatmap import grid


def test_level_for_zoom_gives_8_to_16_cells_per_tile_side():
    assert [grid.level_for_zoom(z) for z in (0, 8, 9, 10, 11, 12, 13, 14, 18)] == [12, 12, 12, 14, 14, 16, 16, 18, 18]
    for z in range(8, 15):
        assert 2 ** (grid.level_for_zoom(z) - z) in (8, 16)


@pytest.mark.parametrize("x, y", [(0, 0), (1, 0), (0, 1), (5, 3), (130988, 87221), (262143, 262143)])
def test_morton_keys_agree_with_sql_and_decode(x, y):
    q = grid.morton_one(x, y)
    assert db.session.execute(text("SELECT heatmap_morton(:x, :y), heatmap_cell_x(:q), heatmap_cell_y(:q)"),
                              {"x": x, "y": y, "q": q}).one() == (q, x, y)


def test_a_tile_key_range_holds_exactly_its_cells():
    lo, hi = grid.tile_key_range(16, 14, 8187, 5449)
    inside = {(x, y) for x in range(8187 * 4, 8187 * 4 + 4) for y in range(5449 * 4, 5449 * 4 + 4)}
    assert {(x, y) for x in range(8187 * 4 - 1, 8187 * 4 + 5) for y in range(5449 * 4 - 1, 5449 * 4 + 5)
            if lo <= grid.morton_one(x, y) <= hi} == inside


def test_key_ranges_cover_a_box():
    box = (100, 113, 200, 205)
    ranges = grid.key_ranges(16, *box)
    assert len(ranges) <= 64
    for x in range(95, 120):
        for y in range(195, 210):
            covered = any(lo <= grid.morton_one(x, y) <= hi for lo, hi in ranges)
            if box[0] <= x <= box[1] and box[2] <= y <= box[3]:
                assert covered


def test_point_cell_in_sql_matches_the_tile_of_its_location():
    x, y = db.session.execute(text(
        "SELECT heatmap_fine_x(ST_X(p)), heatmap_fine_y(ST_Y(p)) "
        "FROM heatmap_point_3857(ST_SetSRID(ST_MakePoint(-0.1145, 51.4627), 4326)) AS p"
    )).one()
    assert (x, y) == grid.lonlat_to_cell(-0.1145, 51.4627, 18)


def test_route_counts_in_each_cell_it_crosses_once():
    s = grid.FINE_CELL_M
    # Along row y = 10 (Web Mercator metres, y up), from the middle of cell 0 to the middle of cell 3, and
    # back again into cell 2: cells 0..3 once each.
    xs = np.array([0.5 * s, 3.5 * s, 2.5 * s])
    ys = np.array([-10.5 * s] * 3)
    cells = grid.route_fine_cells(np.zeros(3, dtype=int), xs, ys)
    assert [tuple(c) for c in cells.tolist()] == [(0, grid.HALF + i, grid.HALF + 10) for i in range(4)]


def test_diagonal_route_includes_corner_clipped_cells_and_no_others():
    s = grid.FINE_CELL_M
    # From (0.2, 0.1) to (2.2, 1.3) in cell units: crosses x = 1, x = 2 and y = 1.
    xs, ys = np.array([0.2 * s, 2.2 * s]), np.array([0.1 * s, 1.3 * s])
    cells = {(int(x) - grid.HALF, grid.HALF - 1 - int(y)) for _, x, y in grid.route_fine_cells(np.zeros(2, dtype=int), xs, ys)}
    # y flips: cell row r in metres-up is y index HALF - 1 - r.
    assert cells == {(0, 0), (1, 0), (1, 1), (2, 1)}


def test_routes_of_several_reports_stay_apart():
    s = grid.FINE_CELL_M
    owners = np.array([0, 0, 1, 1])
    xs = np.array([0.5, 1.5, 5.5, 5.6]) * s
    ys = np.array([-0.5, -0.5, -0.5, -0.5]) * s
    assert [tuple(c) for c in grid.route_fine_cells(owners, xs, ys).tolist()] == [
        (0, grid.HALF, grid.HALF), (0, grid.HALF + 1, grid.HALF), (1, grid.HALF + 5, grid.HALF)]


# One rule for a route's cells, written in docs/architecture.md: a route lies in each cell whose
# inside it crosses (the line and the cell's interior share a stretch, not just a point). The heatmap
# places routes with NumPy (grid.route_fine_cells), the lighting export in SQL (backend/exports/lighting.py);
# both are tested against PostGIS saying exactly that, ST_Relate(route, cell, '1********'), here and in
# tests/exports/test_exports.py (test_counts_equal_a_brute_force_count_over_the_raw_reports).
_CELLS_A_ROUTE_CROSSES = text("""
    SELECT x, y
    FROM (SELECT heatmap_route_3857(ST_GeomFromText(:route, 4326)) AS route) AS r,
         generate_series(:x0, :x1) AS x, generate_series(:y0, :y1) AS y
    WHERE ST_Relate(r.route, ST_TileEnvelope(18, x, y), '1********')
""")


def test_route_cells_are_the_cells_whose_inside_the_route_crosses():
    rng = np.random.default_rng(7)
    for n in range(60):
        lon, lat = rng.uniform(-0.14, -0.08), rng.uniform(51.49, 51.53)
        steps = rng.normal(0, 0.0015 if n % 2 else 0.004, size=(rng.integers(1, 7), 2))
        points = np.vstack([[lon, lat], [lon, lat] + np.cumsum(steps, axis=0)])
        wkt = "LINESTRING(" + ", ".join(f"{x:.7f} {y:.7f}" for x, y in points) + ")"
        xs, ys = np.asarray(db.session.execute(text(
            "SELECT ST_X(d.geom), ST_Y(d.geom) FROM ST_DumpPoints(heatmap_route_3857(ST_GeomFromText(:r, 4326))) d"
        ), {"r": wkt}).all()).T
        ours = {(int(x), int(y)) for _, x, y in grid.route_fine_cells(np.zeros(len(xs), dtype=np.int64), xs, ys)}
        x0, y0 = np.min([c for c in ours], axis=0) - 2
        x1, y1 = np.max([c for c in ours], axis=0) + 2
        postgis = {tuple(row) for row in db.session.execute(_CELLS_A_ROUTE_CROSSES, {
            "route": wkt, "x0": int(x0), "x1": int(x1), "y0": int(y0), "y1": int(y1)}).all()}
        assert ours == postgis, wkt
