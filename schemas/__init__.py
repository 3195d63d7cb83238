"""marshmallow schemas shared by the API, the workers and the docs. Fields that recur (GeoJSON
geometries, UTC timestamps, text, bounding boxes) are written once, in fields.py and geojson.py."""
