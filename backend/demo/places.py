"""Real places for demo reports (data/, attributions in data/SOURCES.md): London's streets
(OpenStreetMap), TfL's bus stops and its rail and Underground stations.

- ``Streets``: the street network as a walkable graph in memory (vertices rounded to about a metre,
  so that ways meeting at a junction share it): the nearest street point to a place, and a random
  walk along the streets from there.
- ``Stops``: the nearest bus stop or tube station to a place, with its name.

Each is read once per process, lazily.
"""

from __future__ import annotations

import csv
import json
import math
import random
from functools import cache
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from backend.geo import METRES_PER_DEGREE_LAT

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
ROUND = 5  # decimals of a degree: about a metre
WITHIN_M = 150  # a place further than this from any street is not on the network


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (b[0] - a[0]) * METRES_PER_DEGREE_LAT * math.cos(math.radians(a[1]))
    return math.hypot(dx, (b[1] - a[1]) * METRES_PER_DEGREE_LAT)


class Streets:
    def __init__(self, path: Path) -> None:
        _, _, geometries, _ = pyogrio.raw.read(str(path), columns=[])
        self.neighbours: dict[tuple[float, float], set[tuple[float, float]]] = {}
        for line in shapely.from_wkb(geometries):
            coords = [(round(x, ROUND), round(y, ROUND)) for x, y in shapely.get_coordinates(line)]
            for a, b in zip(coords, coords[1:]):
                if a != b:
                    self.neighbours.setdefault(a, set()).add(b)
                    self.neighbours.setdefault(b, set()).add(a)
        self.nodes = sorted(self.neighbours)
        self.tree = shapely.STRtree(shapely.points(np.array(self.nodes)))

    def nearest(self, lon: float, lat: float) -> tuple[float, float] | None:
        """The street vertex nearest the place, if within WITHIN_M."""
        node = self.nodes[int(self.tree.nearest(shapely.Point(lon, lat)))]
        return node if _metres((lon, lat), node) <= WITHIN_M else None

    def walk(self, rng: random.Random, start: tuple[float, float], metres: float) -> list[tuple[float, float]]:
        """A walk along the streets from ``start`` of about ``metres``, never coming back on itself:
        at each junction a random way on (straight on more likely than a turn)."""
        points, seen, walked = [start], {start}, 0.0
        heading = None
        while walked < metres:
            here = points[-1]
            options = [n for n in sorted(self.neighbours[here]) if n not in seen]
            if not options:
                break
            if heading is None:
                step = rng.choice(options)
            else:
                weights = [1.0 + 4.0 * max(0.0, math.cos(_bearing(here, n) - heading)) for n in options]
                step = rng.choices(options, weights=weights)[0]
            heading = _bearing(here, step)
            walked += _metres(here, step)
            points.append(step)
            seen.add(step)
        return points


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.atan2((b[0] - a[0]) * math.cos(math.radians(a[1])), b[1] - a[1])


class Stops:
    """Named points (bus stops, stations) and the nearest one to a place."""

    def __init__(self, points: list[tuple[float, float, str]]) -> None:
        self.points = points
        self.tree = shapely.STRtree(shapely.points(np.array([(x, y) for x, y, _ in points])))

    def nearest(self, lon: float, lat: float) -> tuple[float, float, str]:
        return self.points[int(self.tree.nearest(shapely.Point(lon, lat)))]


@cache
def streets() -> Streets:
    return Streets(DATA_DIR / "london_streets.gpkg")


@cache
def bus_stops() -> Stops:
    with open(DATA_DIR / "london_bus_stops.csv", newline="", encoding="utf-8") as f:
        return Stops([(float(r["lon"]), float(r["lat"]), r["name"]) for r in csv.DictReader(f)])


@cache
def stations(mode: str) -> Stops:
    features = json.loads((DATA_DIR / "london_stations.geojson").read_text(encoding="utf-8"))["features"]
    return Stops([(*f["geometry"]["coordinates"], f["properties"]["name"]) for f in features
                  if mode in f["properties"]["modes"]])
