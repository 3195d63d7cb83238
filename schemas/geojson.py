"""GeoJSON geometry fields (RFC 7946: longitude, latitude), written once and used everywhere.

They load into Shapely geometries, having checked what PostGIS would choke on or silently accept:
wrong types, coordinates out of range or not finite, too few or too many vertices, degenerate or
self-intersecting shapes. They dump from Shapely geometries or GeoAlchemy2 WKB elements.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import to_shape
from marshmallow import ValidationError, fields
from shapely.geometry import LineString, Point, Polygon, mapping

from backend.geo import haversine_m

ALLOWED_MEMBERS = {"type", "coordinates", "bbox"}


def line_length_m(coords: list[tuple[float, float]]) -> float:
    return sum(haversine_m(a, b) for a, b in zip(coords, coords[1:]))


def _position(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise ValidationError(f"{where} must be [longitude, latitude]")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValidationError(f"{where} must hold finite numbers")
        numbers.append(float(v))
    lon, lat = numbers[0], numbers[1]
    if not -180 <= lon <= 180:
        raise ValidationError(f"{where}: longitude {lon} is outside -180..180 (GeoJSON is [longitude, latitude])")
    if not -90 <= lat <= 90:
        raise ValidationError(f"{where}: latitude {lat} is outside -90..90 (GeoJSON is [longitude, latitude])")
    return lon, lat


POSITION_SCHEMA = {"type": "array", "items": {"type": "number", "minimum": -180, "maximum": 180},
                   "minItems": 2, "maxItems": 3, "description": "[longitude, latitude] (latitude within -90..90)"}


class Geometry(fields.Field):
    """Base for one GeoJSON geometry type."""

    geometry_type = ""
    coordinates_schema: dict = {"type": "array"}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            **kwargs.pop("metadata", {}),
            "type": "object",
            "description": f"A GeoJSON {self.geometry_type} in [longitude, latitude] (WGS 84)",
            "properties": {"type": {"type": "string", "enum": [self.geometry_type]},
                           "coordinates": self.coordinates_schema},
            "required": ["type", "coordinates"],
            "additionalProperties": False,
        }
        super().__init__(metadata=metadata, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> dict | None:
        if value is None:
            return None
        if isinstance(value, WKBElement):
            value = to_shape(value)
        geojson = mapping(value)
        return {"type": geojson["type"], "coordinates": _lists(geojson["coordinates"])}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(f"must be a GeoJSON {self.geometry_type} object")
        if value.get("type") != self.geometry_type:
            raise ValidationError(f"must be a GeoJSON {self.geometry_type} (got type {value.get('type')!r})")
        extra = set(value) - ALLOWED_MEMBERS
        if extra:
            raise ValidationError(f"unknown member(s): {', '.join(sorted(extra))}")
        if "coordinates" not in value:
            raise ValidationError("coordinates are missing")
        return self.build(value["coordinates"])

    def build(self, coordinates: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _lists(coords: Any) -> Any:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (list, tuple)):
        return [_lists(c) for c in coords]
    return list(coords)


class PointField(Geometry):
    geometry_type = "Point"
    coordinates_schema = POSITION_SCHEMA

    def build(self, coordinates: Any) -> Point:
        return Point(_position(coordinates, "coordinates"))


class LineStringField(Geometry):
    geometry_type = "LineString"

    def __init__(self, *, max_vertices: int, max_length_m: float, **kwargs: Any) -> None:
        self.coordinates_schema = {"type": "array", "items": POSITION_SCHEMA, "minItems": 2, "maxItems": max_vertices}
        super().__init__(**kwargs)
        self.max_vertices = max_vertices
        self.max_length_m = max_length_m

    def build(self, coordinates: Any) -> LineString:
        if not isinstance(coordinates, list):
            raise ValidationError("coordinates must be a list of [longitude, latitude] positions")
        if len(coordinates) < 2:
            raise ValidationError("needs at least 2 points")
        if len(coordinates) > self.max_vertices:
            raise ValidationError(f"at most {self.max_vertices} points (got {len(coordinates)})")
        positions = [_position(c, f"point {i}") for i, c in enumerate(coordinates)]
        if len(set(positions)) < 2:
            raise ValidationError("is degenerate: all its points are the same")
        length_m = line_length_m(positions)
        if length_m > self.max_length_m:
            raise ValidationError(f"is {length_m / 1000:.1f} km long; at most {self.max_length_m / 1000:g} km")
        line = LineString(positions)
        if not line.is_simple:
            raise ValidationError("crosses itself; send the route as it was travelled without loops")
        return line


class PolygonField(Geometry):
    geometry_type = "Polygon"

    def __init__(self, *, max_vertices: int = 1000, **kwargs: Any) -> None:
        self.coordinates_schema = {"type": "array", "minItems": 1,
                                   "items": {"type": "array", "items": POSITION_SCHEMA, "minItems": 4}}
        super().__init__(**kwargs)
        self.max_vertices = max_vertices

    def build(self, coordinates: Any) -> Polygon:
        if not isinstance(coordinates, list) or not coordinates:
            raise ValidationError("coordinates must be a list of linear rings")
        rings = []
        total = 0
        for r, ring in enumerate(coordinates):
            if not isinstance(ring, list) or len(ring) < 4:
                raise ValidationError(f"ring {r} needs at least 4 positions")
            total += len(ring)
            if total > self.max_vertices:
                raise ValidationError(f"at most {self.max_vertices} positions in all")
            positions = [_position(c, f"ring {r} position {i}") for i, c in enumerate(ring)]
            if positions[0] != positions[-1]:
                raise ValidationError(f"ring {r} is not closed: its last position must equal its first")
            rings.append(positions)
        polygon = Polygon(rings[0], rings[1:])
        if polygon.area == 0:
            raise ValidationError("is degenerate: it has no area")
        if not polygon.is_valid:
            raise ValidationError(f"is not a valid polygon: {shapely.is_valid_reason(polygon)}")
        return polygon
