"""Heatmaps over HTTP (docs/api.md, "Heatmaps"): cells as GeoJSON, vector tiles, hotspots, public cells."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import abort

from backend.auth import COUNCIL, STAFF, current_principal, requires
from backend.config import current_settings
from backend.heatmap import grid, publishing, significance
from backend.heatmap import queries as service
from backend.http import Blueprint
from schemas.heatmap import (
    HeatmapArgsSchema,
    HeatmapCellsArgsSchema,
    HeatmapSchema,
    HotspotArgsSchema,
    HotspotsSchema,
    PublicHeatmapArgsSchema,
    PublicHeatmapSchema,
    default_window,
)

blp = Blueprint("heatmap", __name__, url_prefix="/api/v1", description="Heatmaps, tiles and hotspots")

MVT = "application/vnd.mapbox-vector-tile"
HOTSPOT_DEFAULT_DAYS = 28
TILE_MAX_AGE_S = 60
PUBLIC_MAX_AGE_S = 300
WHOLE_MAP_MAX_LEVEL = 16  # from this level on, /heatmap needs a bbox


def _filters(args: dict[str, Any], window: tuple | None = None) -> service.Filters:
    principal = current_principal()
    start, end = window or (args.get("from_"), args.get("to"))
    return service.Filters(
        categories=tuple(args["category"]) if args.get("category") else None,
        modes=tuple(args["mode"]) if args.get("mode") else None,
        from_day=start,
        to_day=end,
        hours=args["hours"].hours if args.get("hours") else None,
        after_midnight=args["hours"].after_midnight if args.get("hours") else (),
        weekdays=args.get("days"),
        council=principal.council if principal.is_council else None,
    )


def _feature(cell: dict[str, Any]) -> dict[str, Any]:
    cell_id = f"{cell['level']}/{cell['x']}/{cell['y']}"
    return {
        "type": "Feature",
        "id": cell_id,
        "geometry": json.loads(cell["geometry"]),
        "properties": {"cell": cell_id, "count": cell["count"],
                       **{k: cell[k] or 0 for k in ("harassment", "spiking", "unsafe_route")}},
    }


@blp.route("/heatmap")
class Heatmap(MethodView):
    @requires(*STAFF, COUNCIL)
    @blp.arguments(HeatmapCellsArgsSchema(), location="query")
    @blp.response(200, HeatmapSchema)
    def get(self, args: dict[str, Any]):
        """Heatmap cells as GeoJSON (staff; a council officer sees cells inside its area)

        Each feature is a grid cell with `count` and per-category counts. `zoom` picks the cell
        size (level 12, about 6 km in London, to level 18, about 95 m). Filters: `bbox`,
        `category` and `mode` (repeatable), `from`/`to` (local days, inclusive), `hours` (local,
        e.g. `22-4`, end excluded), `days` (e.g. `fri,sat`). A range of `hours` across midnight is
        a night: its hours after midnight count with the day it starts on, for `days`, `from` and `to`.
        """
        level = grid.level_for_zoom(args["zoom"])
        if level >= WHOLE_MAP_MAX_LEVEL and not args.get("bbox"):
            # Street-level cells of a whole city are tiles' work; as GeoJSON they need a box.
            abort(422, errors={"bbox": [f"is required at zoom {args['zoom']} (cells of level {level})"]})
        found = service.cells(_filters(args), service.Area.bbox(level, args.get("bbox")), args["limit"] + 1)
        truncated = len(found) > args["limit"]
        return {"type": "FeatureCollection", "level": level, "truncated": truncated,
                "features": [_feature(c) for c in found[: args["limit"]]]}


@blp.route("/heatmap/tiles/<int:z>/<int:x>/<int:y>.mvt")
class HeatmapTile(MethodView):
    @requires(*STAFF, COUNCIL)
    @blp.arguments(HeatmapArgsSchema(), location="query")
    @blp.response(200, description="A Mapbox Vector Tile, layer `heatmap`", content_type=MVT)
    @blp.alt_response(204, description="No cells in this tile")
    @blp.alt_response(304, description="Not modified (If-None-Match)")
    def get(self, args: dict[str, Any], z: int, x: int, y: int):
        """The heatmap as a vector tile (layer `heatmap`), with the same filters as `/heatmap`

        Features are cell polygons with `cell`, `count`, `harassment`, `spiking`, `unsafe_route`.
        The tile's zoom picks the cell size. Answers carry an ETag and Cache-Control.
        """
        if z > 18:
            abort(422, errors={"z": ["must be between 0 and 18"]})
        if x >= 2**z or y >= 2**z:
            abort(422, errors={"x" if x >= 2**z else "y": [f"must be below {2**z} at zoom {z}"]})
        if args.get("bbox"):
            abort(422, errors={"bbox": ["tiles are bounded by z/x/y; leave bbox out"]})
        body = service.tile(_filters(args), z, x, y, grid.level_for_zoom(z))
        headers = {"Cache-Control": f"private, max-age={TILE_MAX_AGE_S}", "Vary": "Authorization"}
        if not body:
            return Response(status=204, headers=headers)
        etag = hashlib.sha256(body).hexdigest()[:32]
        response = Response(body, status=200, mimetype=MVT, headers=headers)
        response.set_etag(etag)
        return response.make_conditional(request)


@blp.route("/hotspots")
class Hotspots(MethodView):
    @requires(*STAFF, COUNCIL)
    @blp.arguments(HotspotArgsSchema(), location="query")
    @blp.response(200, HotspotsSchema)
    def get(self, args: dict[str, Any]):
        """The cells with most reports in a period, named, with the previous period's count and whether the rise is significant

        The period is `from`..`to` (local days, inclusive; by default the last 28 days); the
        previous period is as many days just before it. Cells with fewer than `min_count` reports
        (default 5) are left out. Each is named by its nearest station, the nearest named street of
        the loaded network and its borough; `rising` is true when an exact test says the rise is
        unlikely to be chance (`p_value` below 0.05; `confidence` in words). Same filters as
        `/heatmap`; `zoom` picks the cell size (default 12: level 16, cells of about 380 m in London).
        """
        today = datetime.now(current_settings().tz).date()
        start, end = default_window(args, HOTSPOT_DEFAULT_DAYS, today)
        f = _filters(args, (start, end))
        level = grid.level_for_zoom(args["zoom"])
        rows = service.hotspots(f, service.Area.bbox(level, args.get("bbox")), args["limit"], args["min_count"])
        previous = f.shifted((end - start).days + 1)
        return {
            "level": level,
            "min_count": args["min_count"],
            "period": {"from": start.isoformat(), "to": end.isoformat()},
            "previous_period": {"from": previous.from_day.isoformat(), "to": previous.to_day.isoformat()},
            "hotspots": [_hotspot(r) for r in rows],
        }


def _hotspot(row: dict[str, Any]) -> dict[str, Any]:
    p_value = significance.rise_p_value(row["count"], row["previous_count"])
    geometry = json.loads(row["geometry"])
    ring = geometry["coordinates"][0]
    return {
        "cell": f"{row['level']}/{row['x']}/{row['y']}",
        "place": {k: row[k] for k in ("station", "station_distance_m", "street", "borough")},
        "count": row["count"],
        "previous_count": row["previous_count"],
        "change": row["count"] - row["previous_count"],
        "change_pct": (round(100 * (row["count"] - row["previous_count"]) / row["previous_count"], 1)
                       if row["previous_count"] else None),
        "p_value": round(p_value, 4),
        "rising": p_value < significance.RISING_P,
        "confidence": significance.confidence(p_value),
        "centre": json.loads(row["centre"]),
        "bounds": [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)],
        "geometry": geometry,
    }


@blp.route("/public/heatmap")
class PublicHeatmap(MethodView):
    @blp.arguments(PublicHeatmapArgsSchema(), location="query")
    @blp.response(200, PublicHeatmapSchema)
    def get(self, args: dict[str, Any]):
        """The public heatmap (no sign-in): coarse cells, noisy counts only, by whole weeks

        Counts are sums of published units: a unit is one public cell, one local ISO week (Monday to
        Sunday) and one category, published only when at least `PUBLIC_MIN_REPORTERS` (default 5)
        different people reported in it and its count, with noise added (`epsilon` per unit), is at
        least as many. `from`/`to` are snapped to whole weeks, and only weeks at least a week past
        their end are answered; `weeks` says which weeks the counts cover (null: none). Filters:
        `category`, `from`/`to`, `bbox`. The same question always gets the same answer.
        """
        settings = current_settings()
        today = datetime.now(settings.tz).date()
        window = publishing.Window.snapped(args.get("from_"), args.get("to"), today)
        found = service.public_cells(window, tuple(args["category"]) if args.get("category") else None,
                                     service.Area.bbox(grid.PUBLIC_LEVEL, args.get("bbox")),
                                     settings.public_min_reporters, settings.public_epsilon,
                                     settings.public_noise_secret.encode())
        body = {"type": "FeatureCollection", "min_reporters": settings.public_min_reporters,
                "epsilon": settings.public_epsilon, "weeks": window.describe(),
                "features": [{"type": "Feature", "geometry": json.loads(c["geometry"]),
                              "properties": {"count": c["count"]}} for c in found]}
        return body, 200, {"Cache-Control": f"public, max-age={PUBLIC_MAX_AGE_S}"}
