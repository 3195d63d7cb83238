"""The heatmap's grid: the slippy-map tile pyramid in Web Mercator (EPSG:3857).

A cell at level L is the tile (L, x, y): ``ST_TileEnvelope(L, x, y)`` is its square, and a map
tile at zoom z <= L holds whole cells. Reports are placed at the finest level (18, cells of about
95 m in London); the cell of a coarser level is the fine cell's ancestor (x >> (18 - L)). A
point's fine cell is computed in SQL (``heatmap_fine_x``/``heatmap_fine_y``, migration 0002); a
route's fine cells by ``route_fine_cells`` below, used by the incremental job and the rebuild alike.

Why squares and not H3 hexagons: cells that are map tiles nest exactly (a parent is a bit shift),
fall on tile borders (a vector tile holds whole cells, never halves), and are computed inside
PostgreSQL, so aggregates, tiles and council scoping stay set-based SQL; H3 would need an
extension Debian does not ship, or every report to pass through Python.
"""

from __future__ import annotations

import math

import numpy as np

FINE_LEVEL = 18
LEVELS = (12, 14, 16, 18)  # stored levels, coarse to fine
PUBLIC_LEVEL = 14  # the public heatmap's coarse cells (about 1.5 km in London)
EARTH_CIRCUMFERENCE_M = 40075016.685578488
FINE_CELL_M = EARTH_CIRCUMFERENCE_M / 2**FINE_LEVEL  # in Web Mercator metres
HALF = 2 ** (FINE_LEVEL - 1)
LAST = 2**FINE_LEVEL - 1
MAX_LAT = 85.0511287798


def level_for_zoom(zoom: int) -> int:
    """The stored level whose cells look 16 to 32 pixels wide at this map zoom (coarsest 12, finest 18)."""
    # A tile is 256 px wide and holds 2^(level - zoom) cells across: 8 or 16 of them.
    return min(FINE_LEVEL, max(LEVELS[0], 2 * ((zoom + 4) // 2)))


def lonlat_to_cell(lon: float, lat: float, level: int) -> tuple[int, int]:
    """The cell of ``level`` holding a longitude/latitude (latitude clamped to Web Mercator's range)."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    n = 2**level
    x = math.floor((lon + 180.0) / 360.0 * n)
    y = math.floor((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(n - 1, max(0, x)), min(n - 1, max(0, y))


def bbox_cell_range(bbox: tuple[float, float, float, float], level: int) -> tuple[int, int, int, int]:
    """The cells of ``level`` covering a (west, south, east, north) box: x0, x1, y0, y1 inclusive."""
    west, south, east, north = bbox
    x0, y0 = lonlat_to_cell(west, north, level)
    x1, y1 = lonlat_to_cell(east, south, level)
    return x0, x1, y0, y1


def route_fine_cells(owners: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The fine cells each route passes through, for many routes at once.

    ``owners[i]`` says which route vertex i (``xs[i]``, ``ys[i]``, Web Mercator metres) belongs to;
    a route's vertices are consecutive. Each segment is cut where it crosses a grid line; every
    piece lies inside one cell, which its midpoint names. Returns unique rows (owner, x, y).
    """
    same = owners[1:] == owners[:-1]
    owner = owners[:-1][same]
    x0, y0, x1, y1 = xs[:-1][same], ys[:-1][same], xs[1:][same], ys[1:][same]
    n_seg = owner.size
    if n_seg == 0:
        return np.empty((0, 3), dtype=np.int64)
    seg = np.arange(n_seg)
    ts = [np.zeros(n_seg), np.ones(n_seg)]
    segs = [seg, seg]
    for a0, a1 in ((x0, x1), (y0, y1)):
        moving = a1 != a0
        lo = np.ceil(np.minimum(a0, a1) / FINE_CELL_M).astype(np.int64)
        hi = np.floor(np.maximum(a0, a1) / FINE_CELL_M).astype(np.int64)
        count = np.where(moving, np.maximum(hi - lo + 1, 0), 0)
        total = int(count.sum())
        if total == 0:
            continue
        which = np.repeat(seg, count)
        starts = np.repeat(np.cumsum(count) - count, count)
        k = np.repeat(lo, count) + (np.arange(total) - starts)
        ts.append((k * FINE_CELL_M - a0[which]) / (a1[which] - a0[which]))
        segs.append(which)
    t = np.concatenate(ts)
    s = np.concatenate(segs)
    order = np.lexsort((t, s))
    t, s = t[order], s[order]
    piece = (s[1:] == s[:-1]) & (t[1:] > t[:-1])
    mid_t = (t[:-1][piece] + t[1:][piece]) / 2
    ps = s[:-1][piece]
    mx = x0[ps] + (x1[ps] - x0[ps]) * mid_t
    my = y0[ps] + (y1[ps] - y0[ps]) * mid_t
    cx = np.clip(np.floor(mx / FINE_CELL_M).astype(np.int64) + HALF, 0, LAST)
    cy = np.clip(np.floor(-my / FINE_CELL_M).astype(np.int64) + HALF, 0, LAST)
    cells = np.stack([owner[ps].astype(np.int64), cx, cy], axis=1)
    return np.unique(cells, axis=0)


def _spread(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def morton(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cell keys: the Morton (Z-order) codes of x, y, as SQL's heatmap_morton() computes them."""
    return _spread(np.asarray(x)) | (_spread(np.asarray(y)) << 1)


def morton_one(x: int, y: int) -> int:
    return int(morton(np.asarray([x]), np.asarray([y]))[0])


def tile_key_range(level: int, zoom: int, tile_x: int, tile_y: int) -> tuple[int, int]:
    """The cell keys of ``level`` inside map tile (zoom, x, y): one contiguous range, ends included."""
    shift = 2 * (level - zoom)
    prefix = morton_one(tile_x, tile_y)
    return prefix << shift, ((prefix + 1) << shift) - 1


def key_ranges(level: int, x0: int, x1: int, y0: int, y1: int, max_ranges: int = 64) -> list[tuple[int, int]]:
    """Key ranges covering the cells x0..x1, y0..y1 of ``level`` (a superset: callers filter by x, y),
    using the smallest aligned blocks that keep the number of ranges under ``max_ranges``."""
    for block in range(level + 1):
        bx0, bx1, by0, by1 = x0 >> block, x1 >> block, y0 >> block, y1 >> block
        if (bx1 - bx0 + 1) * (by1 - by0 + 1) <= max_ranges:
            break
    shift = 2 * block
    starts = sorted(morton_one(bx, by) for bx in range(bx0, bx1 + 1) for by in range(by0, by1 + 1))
    ranges: list[tuple[int, int]] = []
    for start in starts:
        lo, hi = start << shift, ((start + 1) << shift) - 1
        if ranges and ranges[-1][1] + 1 == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    return ranges
