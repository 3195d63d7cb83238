"""Streaming file writers: each takes the ranking's rows a batch at a time and keeps nothing else.

- GeoJSON (RFC 7946): written as text; PostGIS encodes each geometry (lon/lat, right-hand rule).
- CSV: one row per place, the geometry as WKT plus the lon/lat of a representative point (a cell's
  centre, a segment's midpoint), for tools that read points from two columns.
- GeoPackage: written by GDAL through pyogrio, a batch at a time into one layer.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw

from backend.exports.lighting import output_fields

EXTENSIONS = {"geojson": "geojson", "csv": "csv", "gpkg": "gpkg"}
MEDIA_TYPES = {"geojson": "application/geo+json", "csv": "text/csv", "gpkg": "application/geopackage+sqlite3"}
LAYER = "lighting_priorities"
INTEGER_FIELDS = {"rank", "report_count", "poor_lighting_count", "priority_score"}
REAL_FIELDS = {"night_share", "length_m"}
DATE_FIELDS = {"first_reported", "last_reported"}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


class Writer:
    geometry = "wkb"

    def __init__(self, path: Path, places: str) -> None:
        self.path = path
        self.places = places
        self.fields = output_fields(places)

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def write(self, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class GeoJsonWriter(Writer):
    geometry = "geojson"

    def __init__(self, path: Path, places: str) -> None:
        super().__init__(path, places)
        self.file = open(path, "w", encoding="utf-8")
        self.file.write('{"type": "FeatureCollection", "name": "%s", "features": [\n' % LAYER)
        self.first = True

    def write(self, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        where = [columns.index(f) for f in self.fields]
        geometry = columns.index("geometry")
        lines = []
        for row in rows:
            properties = json.dumps({f: _plain(row[i]) for f, i in zip(self.fields, where)}, separators=(",", ":"))
            lines.append(f'{{"type":"Feature","geometry":{row[geometry]},"properties":{properties}}}')
        if lines:
            self.file.write(("" if self.first else ",\n") + ",\n".join(lines))
            self.first = False

    def close(self) -> None:
        self.file.write("\n]}\n")
        self.file.close()


class CsvWriter(Writer):
    geometry = "wkt"

    def __init__(self, path: Path, places: str) -> None:
        super().__init__(path, places)
        self.file = open(path, "w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.file)
        self.columns = (*self.fields, "lon", "lat", "wkt")
        self.csv.writerow(self.columns)

    def write(self, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        where = [columns.index("geometry" if c == "wkt" else c) for c in self.columns]
        self.csv.writerows([_plain(row[i]) for i in where] for row in rows)

    def close(self) -> None:
        self.file.close()


class GeoPackageWriter(Writer):
    geometry = "wkb"

    def __init__(self, path: Path, places: str) -> None:
        super().__init__(path, places)
        self.created = False

    def write(self, columns: Sequence[str], rows: Sequence[tuple]) -> None:
        self._write_arrays([[row[columns.index(f)] for row in rows] for f in (*self.fields, "geometry")])

    def _write_arrays(self, values: list[list[Any]]) -> None:
        *field_values, geometries = values
        arrays = [self._array(f, v) for f, v in zip(self.fields, field_values)]
        pyogrio.raw.write(
            str(self.path), geometry=np.array([bytes(g) for g in geometries], dtype=object), field_data=arrays,
            fields=list(self.fields), geometry_type="LineString" if self.places == "segments" else "Polygon",
            crs="EPSG:4326", driver="GPKG", layer=LAYER, append=self.created,
        )
        self.created = True

    @staticmethod
    def _array(field: str, values: list[Any]) -> np.ndarray:
        if field in INTEGER_FIELDS:
            return np.array(values, dtype=np.int64)
        if field in REAL_FIELDS:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        if field in DATE_FIELDS:
            return np.array(values, dtype="datetime64[D]")
        return np.array(values, dtype=object)

    def close(self) -> None:
        if not self.created:  # no rows: still a valid GeoPackage with the (empty) layer
            self._write_arrays([[] for _ in (*self.fields, "geometry")])


WRITERS = {"geojson": GeoJsonWriter, "csv": CsvWriter, "gpkg": GeoPackageWriter}


def open_writer(fmt: str, path: Path, places: str) -> Writer:
    path.unlink(missing_ok=True)
    return WRITERS[fmt](path, places)
