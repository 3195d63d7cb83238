"""Geodesy written once: metres to degrees, and circles on the Earth drawn as polygons.

Pages and apps get circles from the API (``GET /api/v1/alerts/circle``) instead of converting metres
to degrees themselves, so that what they draw is what the server matches.
"""

from __future__ import annotations

import math

from shapely.geometry import Point, Polygon

# The mean radius of WGS 84, the sphere PostGIS measures on with ST_DWithin(geography, ..., false).
EARTH_RADIUS_M = 6_371_008.8
# A degree of latitude is 110,574 m at the equator and 111,694 m at the poles; this round figure (a
# degree of longitude at the equator) is what the coarse device grid and the demo data were built on.
METRES_PER_DEGREE_LAT = 111_320.0
CIRCLE_SEGMENTS = 64
# Where a location must not be exact (a device's, a partner's coarse webhook): a grid of about 100 m.
COARSE_M = 100.0


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) positions, on the same sphere."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def destination(centre: tuple[float, float], distance_m: float, bearing_deg: float) -> tuple[float, float]:
    """The (lon, lat) reached from ``centre`` after ``distance_m`` along a great circle at ``bearing_deg``
    (0 north, 90 east), the longitude within -180..180."""
    lon1, lat1 = math.radians(centre[0]), math.radians(centre[1])
    angle = distance_m / EARTH_RADIUS_M
    bearing = math.radians(bearing_deg)
    lat2 = math.asin(math.sin(lat1) * math.cos(angle) + math.cos(lat1) * math.sin(angle) * math.cos(bearing))
    lon2 = lon1 + math.atan2(math.sin(bearing) * math.sin(angle) * math.cos(lat1),
                             math.cos(angle) - math.sin(lat1) * math.sin(lat2))
    return (math.degrees(lon2) + 540.0) % 360.0 - 180.0, math.degrees(lat2)


def circle(centre: tuple[float, float], radius_m: float, segments: int = CIRCLE_SEGMENTS) -> Polygon:
    """The points ``radius_m`` from ``centre`` on the sphere, as a polygon of ``segments`` sides.

    The ring runs counterclockwise (RFC 7946) from due north; coordinates are rounded to 1e-7 degrees
    (about 1 cm). It is not split at the antimeridian: a circle crossing it, or around a pole, is not
    a valid polygon in longitude and latitude.
    """
    ring = [destination(centre, radius_m, -360.0 * i / segments) for i in range(segments)]
    ring = [(round(lon, 7), round(lat, 7)) for lon, lat in ring]
    return Polygon([*ring, ring[0]])


def coarse(point: Point) -> Point:
    """The point snapped to a grid of about COARSE_M metres."""
    step_lat = COARSE_M / METRES_PER_DEGREE_LAT
    lat = round(point.y / step_lat) * step_lat
    step_lon = COARSE_M / (METRES_PER_DEGREE_LAT * max(0.01, math.cos(math.radians(lat))))
    lon = round(point.x / step_lon) * step_lon
    return Point(round(max(-180.0, min(180.0, lon)), 6), round(max(-90.0, min(90.0, lat)), 6))
